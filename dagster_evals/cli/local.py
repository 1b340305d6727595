"""The CLI's commands on the embedded local backend: which database, latest reports, pushing a prompt,
and launching a release's eval on a running deployment."""

from __future__ import annotations

import argparse
import json
import sys

from dagster_evals.backends.local.platform import LocalPlatform
from dagster_evals.backends.local.store import (
    ENV_DATABASE_URL,
    parse_database_url,
    redacted,
    resolve_database_url,
    sqlite_path,
    sqlite_url,
)
from dagster_evals.engine.errors import ConfigError
from dagster_evals.metadata import report_markdown

__all__ = ["DB_HELP", "URL_HELP", "location", "open_existing", "print_reports", "push_prompt"]

DB_HELP = (
    "the local backend's database: a SQLite file or a database URL "
    f"(default: ${ENV_DATABASE_URL}, else $DAGSTER_HOME/dagster_evals.sqlite)"
)
URL_HELP = "database URL, e.g. sqlite:///evals.sqlite or postgresql+psycopg://user@host/db"


def location(args: argparse.Namespace) -> str:
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


def open_existing(location: str, project: str) -> LocalPlatform:
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
    from dagster_evals.engine.errors import DagsterEvalsError

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
    platform = open_existing(location, project)
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
