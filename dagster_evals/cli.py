"""`dagster-evals report`: print the latest eval reports stored by the embedded local backend."""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)

    path = args.db or default_db_path()
    platform = LocalPlatform(path, project=args.project)
    try:
        reports = platform.list_eval_reports(limit=args.limit)
        if not reports:
            print(f"no eval reports in {platform.path} (project {args.project!r})", file=sys.stderr)
            return 1
        print(f"eval reports in {platform.path} (project {args.project!r}), newest first:\n")
        for rep in reports:
            print(f"report {rep.id}  created {rep.created_at:%Y-%m-%d %H:%M:%S} UTC")
            print(report_markdown(rep))
            print()
    finally:
        platform.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
