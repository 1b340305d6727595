#!/usr/bin/env bash
# Re-resolve the locked dependencies (constraints.txt): the newest versions pyproject.toml's ranges allow, with
# every extra, resolved on Python 3.11 and then checked on 3.12 and 3.13: each must install with the lock, and
# a package only one of them needs (a dependency conditional on the Python version) is added to the lock.
# Run it, run the test suite (.ci/run), and commit constraints.txt with the result.
#
# Interpreters: pyenv's newest 3.X, else python3.X on PATH. All three are required.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {  # find_python 3.13 -> path of a working interpreter of that minor version
  local version=$1 candidate
  for candidate in \
    "$(command -v pyenv >/dev/null && ls -d "$(pyenv root)/versions/$version".*/bin/python 2>/dev/null | sort -V | tail -1)" \
    "$(command -v "python$version" || true)"; do
    # (a pyenv shim is on PATH even when it cannot run that version here: try it)
    if [[ -n "$candidate" ]] && [[ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" == "$version" ]]; then
      echo "$candidate"
      return
    fi
  done
  echo "update-lock: no Python $version interpreter (pyenv's versions/$version.* or python$version on PATH)" >&2
  exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
lock="$tmp/constraints.txt"

freeze() {  # everything installed except pip itself and the project
  "$1/bin/pip" freeze --all --exclude-editable | grep -v -e '^-e ' -e '^#' -e '^pip=='
}

first=$(find_python 3.11)
"$first" -m venv "$tmp/venv-3.11"
"$tmp/venv-3.11/bin/pip" install -q -U setuptools  # the venv's bundled one is old; 3.12+ venvs have none
"$tmp/venv-3.11/bin/pip" install -q -e ".[test,bench,new-project]"
freeze "$tmp/venv-3.11" > "$lock"

for version in 3.12 3.13; do
  python=$(find_python "$version")
  "$python" -m venv "$tmp/venv-$version"
  "$tmp/venv-$version/bin/pip" install -q -c "$lock" -e ".[test,bench,new-project]"
  freeze "$tmp/venv-$version" | while read -r pinned; do
    name=${pinned%%==*}
    if ! grep -qi "^${name}==" "$lock"; then
      echo "update-lock: Python $version also needs $pinned" >&2
      echo "$pinned" >> "$lock"
    fi
  done
done

{
  echo "# Locked runtime, test and benchmark dependencies (pip constraints) for Python 3.11, 3.12 and 3.13. Regenerate: bash scripts/update-lock.sh"
  LC_ALL=C sort -f "$lock"
} > constraints.txt
echo "constraints.txt updated: $(grep -vc '^#' constraints.txt) packages"
