#!/usr/bin/env bash
# Re-resolve the locked test/benchmark dependencies: newest versions allowed by pyproject.toml's ranges.
# Run it, run the test suite, and commit constraints.txt with the result.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q -e ".[test,bench,new-project]"
{
  echo "# Locked test and benchmark dependencies (pip constraints). Regenerate: bash scripts/update-lock.sh"
  "$tmp/venv/bin/pip" freeze --exclude-editable | grep -v '^-e '
} > constraints.txt
rm -rf "$tmp"
echo "constraints.txt updated: $(grep -vc '^#' constraints.txt) packages"
