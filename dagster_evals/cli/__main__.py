"""`python -m dagster_evals.cli`: the `dagster-evals` command."""

from dagster_evals.cli import main

raise SystemExit(main())
