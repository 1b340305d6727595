"""`dagster-evals`: inspect and feed the embedded local backend (eval reports, prompt versions)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from dagster_evals.metadata import report_markdown
from dagster_evals.platforms.local import DEFAULT_PROJECT, LocalPlatform, default_db_path


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
    args = parser.parse_args(argv)
    if args.command == "push-prompt":
        return push_prompt(args.db, args.project, args.slug, args.content)
    return print_reports(args.db, args.project, args.limit)


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
