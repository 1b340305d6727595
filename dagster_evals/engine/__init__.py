"""The evaluation engine: everything that evaluates, with no orchestrator in it.

Rows and their sources (`sources`, `models`), dataset sync and its row index (`sync`, `row_index`), the
local runner with its bounded calls, isolation, checkpoints and spill (`runner`, `bounded_calls`,
`isolation`, `checkpoints`, `report_spill`), scorers, summaries and usage (`scorers`, `summary`, `usage`,
`usage_report`), gate rules (`gates`), the embedded database (`embedded_db`) and the HTTP client (`http`).

The engine imports no Dagster and no Airflow, and knows no backend: it talks to a platform through the
port in `dagster_evals.engine.platform` (`EvalPlatform`, `StagedSync`), which `dagster_evals.backends`
implement. The Dagster surface (`dagster_evals.assets`, checks, sensors, ...) and the Airflow provider
(`dagster_evals.airflow`) are built on top of it.
"""
