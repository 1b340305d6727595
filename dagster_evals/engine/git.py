"""Git facts for lineage and the release sensor: tags of a repository, and the state of a checkout."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster_evals.engine.errors import DagsterEvalsError

GIT_TIMEOUT_S = 30


class GitError(DagsterEvalsError):
    """A git command failed (repository unreachable, not a repository, git missing)."""


def _git(args: list[str], cwd: str | Path | None = None) -> str:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
            env={"GIT_TERMINAL_PROMPT": "0", "PATH": _path()},
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {' '.join(args[:2])} timed out after {GIT_TIMEOUT_S}s") from exc
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed: {done.stderr.strip()[:500]}")
    return done.stdout


def _path() -> str:
    return os.environ.get("PATH", "/usr/bin:/bin")


@dataclass(frozen=True)
class Release:
    """A tag and the commit it points to."""

    tag: str
    commit: str


def list_tags(repo: str | Path, pattern: str = "v*") -> list[Release]:
    """Tags matching `pattern` in `repo` (a local path or any URL `git ls-remote` reads), oldest version first.

    Annotated tags resolve to the commit they point to.
    """
    output = _git(["ls-remote", "--tags", str(repo)])
    direct: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, ref = line.partition("\t")
        if not ref.startswith("refs/tags/"):
            continue
        name = ref[len("refs/tags/") :]
        if name.endswith("^{}"):
            peeled[name[:-3]] = sha
        else:
            direct[name] = sha
    releases = [
        Release(tag=name, commit=peeled.get(name, sha))
        for name, sha in direct.items()
        if fnmatch.fnmatchcase(name, pattern)
    ]
    return sorted(releases, key=lambda r: version_key(r.tag))


def version_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders `v1.10.0` after `v1.9.2` (numbers numerically, the rest as text)."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.findall(r"\d+|[^\d.\-_]+", text)
    )


def resolve_commit(repo: str | Path, ref: str) -> str | None:
    """The commit `ref` (e.g. a tag) points to in a local repository, or None."""
    try:
        return _git(["rev-parse", f"{ref}^{{commit}}"], cwd=repo).strip() or None
    except GitError:
        return None


def repo_info(path: str | Path | None = None) -> dict[str, Any] | None:
    """State of the checkout at `path` (default: the working directory) — commit, branch, tag, dirty,
    author, message, time — or None outside a git repository."""
    try:
        commit = _git(["rev-parse", "HEAD"], cwd=path).strip()
    except GitError:
        return None
    info: dict[str, Any] = {"commit": commit}
    with contextlib.suppress(GitError):
        fields = _git(["log", "-1", "--format=%an%x00%ae%x00%cI%x00%B"], cwd=path).strip().split("\x00", 3)
        info.update(
            zip(("author_name", "author_email", "commit_time", "commit_message"), fields, strict=False)
        )
    for key, args in (
        ("branch", ["rev-parse", "--abbrev-ref", "HEAD"]),
        ("tag", ["describe", "--tags", "--exact-match"]),
    ):
        try:
            value = _git(args, cwd=path).strip()
            if value and value != "HEAD":
                info[key] = value
        except GitError:
            pass
    with contextlib.suppress(GitError):
        info["dirty"] = bool(_git(["status", "--porcelain", "--untracked-files=no"], cwd=path).strip())
    return info
