"""`dagster-evals`: read eval reports and their rows (local backend, Braintrust, Keywords AI), feed the
local backend's prompts, and launch a release's eval from CI.

    dagster-evals report [REPORT_ID ...] [--limit N]      latest reports (local), or the ones named (any)
    dagster-evals rows REPORT [--scorer S] [--below X] [--errored] [--regressed] [--limit N] [--json]
    dagster-evals diff REPORT_A REPORT_B [--all] [--json]
    dagster-evals html REPORT [--out PATH]                 the report's static HTML page
    dagster-evals push-prompt SLUG CONTENT
    dagster-evals report-release --url … --job … --partitions … --tag …
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dagster_evals.cli.local import (
    DB_HELP,
    URL_HELP,
    location,
    print_reports,
    push_prompt,
    report_release_command,
)
from dagster_evals.cli.platforms import add_backend_arguments, open_platform, platform_name
from dagster_evals.cli.rows import (
    add_rows_arguments,
    diff_command,
    html_command,
    report_command,
    rows_command,
)
from dagster_evals.engine.errors import DagsterEvalsError

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dagster-evals", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", help="print eval reports: the latest (local backend) or those named")
    report.add_argument("report_ids", nargs="*", metavar="REPORT_ID", help="reports to print (any backend)")
    add_backend_arguments(report)
    report.add_argument("--limit", type=int, default=1, help="how many of the latest reports, newest first")
    rows = sub.add_parser("rows", help="every row of a report, filtered, one line each (or JSON)")
    add_rows_arguments(rows)
    add_backend_arguments(rows)
    diff = sub.add_parser("diff", help="compare two reports row by row")
    diff.add_argument("report_a", help="the earlier report (e.g. the baseline)")
    diff.add_argument("report_b", help="the later report")
    diff.add_argument("--all", action="store_true", help="list unchanged rows too")
    diff.add_argument("--json", action="store_true", help="one JSON object per row")
    add_backend_arguments(diff)
    html = sub.add_parser("html", help="write a report's static HTML page (every row, beside the baseline)")
    html.add_argument("report", help="the eval report's id")
    html.add_argument("--out", help="file to write (default: the HTML reports folder, <report id>.html)")
    add_backend_arguments(html)
    prompt = sub.add_parser("push-prompt", help="record a new version of a prompt in the local backend")
    prompt.add_argument("slug")
    prompt.add_argument("content", help='the prompt as a JSON object, e.g. \'{"system": "Be brief."}\'')
    prompt.add_argument("--url", help=URL_HELP)
    prompt.add_argument("--db", help=DB_HELP)
    prompt.add_argument("--project", default=None)
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
    return parser


COMMANDS = {"rows": rows_command, "diff": diff_command, "html": html_command, "report": report_command}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "report-release":
        return report_release_command(args)
    try:
        if args.command == "push-prompt":
            from dagster_evals.backends.local.platform import DEFAULT_PROJECT

            return push_prompt(location(args), args.project or DEFAULT_PROJECT, args.slug, args.content)
        if args.command == "report" and not args.report_ids:
            if platform_name(args) != "local":
                print("error: name the reports to print (REPORT_ID ...) on this platform", file=sys.stderr)
                return 2
            from dagster_evals.backends.local.platform import DEFAULT_PROJECT

            return print_reports(location(args), args.project or DEFAULT_PROJECT, args.limit)
        platform = open_platform(args)
        try:
            return COMMANDS[args.command](args, platform)
        finally:
            platform.close()
    except DagsterEvalsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
