"""The documentation a user navigates: the site builds with `mkdocs build --strict` (no broken link or anchor,
no page left out, every API reference entry resolved), every page of `docs/` is in the navigation, the README's
links lead to files that exist, every object of the API reference has a docstring, and the README's example
runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import griffe
import pytest
import yaml

from tests.conftest import REPO

DOCS = REPO / "docs"
README = REPO / "README.md"

# Methods that implement a framework's hook (Airflow's operators, sensors and triggers, Dagster's resources
# and components): the framework documents what they do, and their classes document how they behave.
FRAMEWORK_HOOKS = frozenset(
    {
        "execute",
        "execute_complete",
        "poke",
        "run",
        "serialize",
        "get_conn",
        "get_openlineage_facets_on_complete",
        "get_openlineage_facets_on_failure",
        "build_defs",
        "get_model_cls",
        "setup_for_execution",
        "teardown_after_execution",
    }
)


def nav_pages(nav: list[Any]) -> Iterator[str]:
    """The page paths of an mkdocs `nav` (entries are paths, or `{title: path-or-section}`)."""
    for entry in nav:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            if isinstance(value, list):
                yield from nav_pages(value)
            else:
                yield value


def heading_anchors(page: Path) -> set[str]:
    """The anchors of a page's headings, as mkdocs' toc and GitHub both spell simple ones."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    anchors = set()
    for title in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        plain = re.sub(r"[^\w\s-]", "", title.replace("`", "").lower())
        anchors.add(re.sub(r"\s+", "-", plain.strip()))
    return anchors


def reference_identifiers() -> list[str]:
    """Every `::: identifier` of the API reference pages."""
    found = []
    for page in sorted((DOCS / "reference").glob("*.md")):
        found += re.findall(r"^::: (\S+)", page.read_text(encoding="utf-8"), flags=re.M)
    return found


def test_the_site_builds_in_strict_mode_without_warnings(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    warnings = [line for line in built.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert built.returncode == 0 and not warnings, "\n".join(warnings) or built.stderr[-3000:]
    # Each API reference entry is rendered on its page, under the name the page gives it.
    for identifier in reference_identifiers():
        pages = list((tmp_path / "site" / "reference").glob("*/index.html"))
        assert any(f'id="{identifier}"' in page.read_text(encoding="utf-8") for page in pages), identifier


def test_every_page_in_docs_is_in_the_navigation() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    in_nav = set(nav_pages(config["nav"]))
    on_disk = {page.relative_to(DOCS).as_posix() for page in DOCS.rglob("*.md")}
    assert on_disk - in_nav == set(), "pages missing from mkdocs.yml's nav"
    assert in_nav - on_disk == set(), "nav entries without a page"


def test_the_readme_links_lead_to_files_and_headings_that_exist() -> None:
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert len(local) >= 15, local  # the README links into the docs
    broken = []
    for link in local:
        path, _, anchor = link.partition("#")
        target = REPO / path
        if not target.is_file() or (anchor and anchor not in heading_anchors(target)):
            broken.append(link)
    assert broken == [], f"README links to no such file or heading: {broken}"


def test_every_object_of_the_api_reference_has_a_docstring() -> None:
    loader = griffe.GriffeLoader(search_paths=[str(REPO)], docstring_parser=griffe.Parser.google)
    for package in ("dagster_evals", "dagster_evals.testing", "dagster_evals.airflow"):
        loader.load(package)
    loader.resolve_aliases(implicit=False, external=None)
    missing = []
    for identifier in reference_identifiers():
        found = loader.modules_collection.get_member(identifier)
        target = found.final_target if found.is_alias else found
        if not has_docstring(target):
            missing.append(identifier)
        if not target.is_class:
            continue
        for name, member in target.members.items():
            public_method = not name.startswith("_") and not member.is_alias and member.is_function
            documented = has_docstring(member) or inherited_doc(target, name)
            if public_method and name not in FRAMEWORK_HOOKS and not documented:
                missing.append(f"{identifier}.{name}")
    assert missing == [], "objects of the API reference without a docstring:\n" + "\n".join(missing)


def has_docstring(obj: Any) -> bool:
    return bool(obj.docstring and obj.docstring.value.strip())


def inherited_doc(cls: Any, name: str) -> bool:
    """Whether `name` overrides a documented method of one of the package's base classes of `cls`."""
    return any(
        name in base.all_members and has_docstring(base.all_members[name]) for base in cls.resolved_bases
    )


def readme_example() -> str:
    """The Python block of the README's "An example"."""
    section = README.read_text(encoding="utf-8").split("## An example", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert found, "no Python block in the README's 'An example'"
    return found.group(1)


def test_the_readme_example_runs_approves_the_release_and_records_the_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the README runs it: from the repository's root, the local backend in DAGSTER_HOME.
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    namespace: dict[str, Any] = {"__name__": "my_evals"}
    exec(compile(readme_example(), "my_evals.py", "exec", dont_inherit=True), namespace)
    defs: dg.Definitions = namespace["defs"]

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)

    assert result.success
    events = result.get_asset_materialization_events()
    materialized = {event.asset_key.to_user_string() for event in events if event.asset_key is not None}
    assert materialized == {
        "evals/support_bot/dataset",
        "evals/support_bot/dataset_snapshot",
        "evals/support_bot/eval_report",
        "release_approved",
    }
    checks = {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}
    assert checks == {"threshold_levenshtein": True, "no_regression": True, "completeness": True}
    assert (tmp_path / "dagster_evals.sqlite").is_file()  # the local backend's one database
