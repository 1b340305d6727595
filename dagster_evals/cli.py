"""`dagster-evals`: inspect and feed the embedded local backend (eval reports, prompt versions)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from dagster_evals.backends.local.platform import DEFAULT_PROJECT, LocalPlatform
from dagster_evals.backends.local.store import (
    ENV_DATABASE_URL,
    parse_database_url,
    redacted,
    resolve_database_url,
    sqlite_path,
    sqlite_url,
)
from dagster_evals.errors import ConfigError
from dagster_evals.metadata import report_markdown

DB_HELP = (
    "the local backend's database: a SQLite file or a database URL "
    f"(default: ${ENV_DATABASE_URL}, else $DAGSTER_HOME/dagster_evals.sqlite)"
)
URL_HELP = "database URL, e.g. sqlite:///evals.sqlite or postgresql+psycopg://user@host/db"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dagster-evals", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", help="print the latest eval reports of the local backend")
    report.add_argument("--url", help=URL_HELP)
    report.add_argument("--db", help=DB_HELP)
    report.add_argument("--project", default=DEFAULT_PROJECT)
    report.add_argument("--limit", type=int, default=1, help="how many reports, newest first")
    prompt = sub.add_parser("push-prompt", help="record a new version of a prompt in the local backend")
    prompt.add_argument("slug")
    prompt.add_argument("content", help='the prompt as a JSON object, e.g. \'{"system": "Be brief."}\'')
    prompt.add_argument("--url", help=URL_HELP)
    prompt.add_argument("--db", help=DB_HELP)
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
    try:
        if args.command == "push-prompt":
            return push_prompt(_location(args), args.project, args.slug, args.content)
        return print_reports(_location(args), args.project, args.limit)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _location(args: argparse.Namespace) -> str:
    """The database URL chosen by `--url` / `--db` (a path or a URL) / the environment."""
    if args.url and args.db:
        raise ConfigError("give --url or --db, not both")
    if args.url:
        return parse_database_url(args.url, origin="--url").render_as_string(hide_password=False)
    if args.db:
        if "://" in args.db:
            return parse_database_url(args.db, origin="--db").render_as_string(hide_password=False)
        return sqlite_url(args.db).render_as_string(hide_password=False)
    return resolve_database_url().render_as_string(hide_password=False)


def _open_existing(location: str, project: str) -> LocalPlatform:
    """Open a database that must already exist: a missing or non-SQLite file is a `ConfigError`."""
    url = parse_database_url(location)
    path = sqlite_path(url)
    if path is not None:
        if not path.exists():
            raise ConfigError(
                f"no local backend database at {path} (nothing has run there yet); "
                "pass --db PATH or --url URL to read another one"
            )
        if not path.is_file():
            raise ConfigError(f"{path} is not a file: --db takes a SQLite file or a database URL")
        with path.open("rb") as f:
            header = f.read(16)
        if header != b"SQLite format 3\x00":
            raise ConfigError(f"{path} is not a SQLite database (its first bytes are not a SQLite header)")
    try:
        return LocalPlatform(url=location, project=project)
    except ConfigError:
        raise
    except Exception as exc:  # e.g. a damaged file
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"cannot read the local backend's database {redacted(url)}: {reason}") from None


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


def push_prompt(location: str, project: str, slug: str, content: str) -> int:
    try:
        parsed = json.loads(content)
    except json.JSONDecodeError as exc:
        print(f"content is not valid JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(parsed, dict):
        print("content must be a JSON object", file=sys.stderr)
        return 2
    platform = LocalPlatform(url=location, project=project)
    try:
        version = platform.push_prompt_version(slug, parsed)
    finally:
        platform.close()
    print(f"prompt {slug!r} is at version {version.version} in {platform.url} (project {project!r})")
    return 0


def print_reports(location: str, project: str, limit: int) -> int:
    platform = _open_existing(location, project)
    try:
        reports = platform.list_eval_reports(limit=limit)
        unfinished = platform.list_unfinished_reports(limit=limit)
        for rep in unfinished:  # running now, or failed before its report was built (e.g. a crash)
            reason = f": {rep['failure']}" if rep["failure"] else ""
            print(
                f"report {rep['id']} ({rep['name']}) created {rep['created_at'][:19]} is {rep['status']}{reason}"
            )
        if unfinished:
            print()
        if not reports:
            print(f"no eval reports in {platform.url} (project {project!r})", file=sys.stderr)
            return 1
        print(f"eval reports in {platform.url} (project {project!r}), newest first:\n")
        for rep in reports:
            print(f"report {rep.id}  created {rep.created_at:%Y-%m-%d %H:%M:%S} UTC")
            print(report_markdown(rep))
            print()
    finally:
        platform.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
