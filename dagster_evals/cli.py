"""`dagster-evals`: inspect and feed the embedded local backend (eval reports, prompt versions)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from dagster_evals.backends.local.platform import DEFAULT_PROJECT, LocalPlatform, default_db_path
from dagster_evals.metadata import report_markdown


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dagster-evals", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", help="print the latest eval reports of the local backend")
    report.add_argument("--db", help=f"SQLite file (default: {default_db_path()})")
    report.add_argument("--project", default=DEFAULT_PROJECT)
    report.add_argument("--limit", type=int, default=1, help="how many reports, newest first")
    prompt = sub.add_parser("push-prompt", help="record a new version of a prompt in the local backend")
    prompt.add_argument("slug")
    prompt.add_argument("content", help='the prompt as a JSON object, e.g. \'{"system": "Be brief."}\'')
    prompt.add_argument("--db", help=f"SQLite file (default: {default_db_path()})")
    prompt.add_argument("--project", default=DEFAULT_PROJECT)
    release = sub.add_parser(
        "report-release", help="launch the eval of a release on a running Dagster deployment (from CI)"
    )
    release.add_argument("--url", required=True, help="Dagster webserver URL, e.g. http://localhost:3000")
    release.add_argument("--job", required=True, help="the partitioned eval job to run")
    release.add_argument("--partitions", required=True, help="name of the eval report's dynamic partitions")
    release.add_argument("--tag", required=True, help="release tag; becomes the partition key")
    release.add_argument("--commit", default="", help="commit the tag points to")
    release.add_argument("--wait", action="store_true", help="wait for the run; exit 1 unless it succeeds")
    release.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait at most")
    args = parser.parse_args(argv)
    if args.command == "report-release":
        return report_release_command(args)
    if args.command == "push-prompt":
        return push_prompt(args.db, args.project, args.slug, args.content)
    return print_reports(args.db, args.project, args.limit)


def report_release_command(args: argparse.Namespace) -> int:
    from dagster_evals.ci import report_release
    from dagster_evals.errors import DagsterEvalsError

    try:
        run = report_release(
            args.url,
            job=args.job,
            partitions_def=args.partitions,
            tag=args.tag,
            commit=args.commit,
            wait=args.wait,
            timeout_s=args.timeout,
        )
    except DagsterEvalsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"launched run {run.run_id} for release {args.tag}: {run.url}")
    if not args.wait:
        return 0
    print(f"run {run.run_id} finished: {run.status}")
    return 0 if run.status == "SUCCESS" else 1


def push_prompt(db: str | None, project: str, slug: str, content: str) -> int:
    try:
        parsed = json.loads(content)
    except json.JSONDecodeError as exc:
        print(f"content is not valid JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(parsed, dict):
        print("content must be a JSON object", file=sys.stderr)
        return 2
    platform = LocalPlatform(db or default_db_path(), project=project)
    try:
        version = platform.push_prompt_version(slug, parsed)
    finally:
        platform.close()
    print(f"prompt {slug!r} is at version {version.version} in {platform.path} (project {project!r})")
    return 0


def print_reports(db: str | None, project: str, limit: int) -> int:
    path = db or default_db_path()
    platform = LocalPlatform(path, project=project)
    try:
        reports = platform.list_eval_reports(limit=limit)
        if not reports:
            print(f"no eval reports in {platform.path} (project {project!r})", file=sys.stderr)
            return 1
        print(f"eval reports in {platform.path} (project {project!r}), newest first:\n")
        for rep in reports:
            print(f"report {rep.id}  created {rep.created_at:%Y-%m-%d %H:%M:%S} UTC")
            print(report_markdown(rep))
            print()
    finally:
        platform.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
