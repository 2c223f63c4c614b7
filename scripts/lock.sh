#!/bin/sh
# Writes requirements.lock: every package pyproject.toml needs (runtime, test and notebook extras), at
# the versions a fresh virtual environment resolves today. `make lock` runs it after a dependency
# changes; `make run`, `make test` and CI then install exactly these versions (pip's -c constraints).
# torch stays 2.13.0, the CPU build this machine keeps on disk (its "+cpu" local label is dropped:
# "torch==2.13.0" matches it, and a machine without that file is told so by pip, never given CUDA).
set -eu
PYTHON="${1:-python3}"
LOCK="${2:-requirements.lock}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PYTHON" -m venv "$TMP/venv"
"$TMP/venv/bin/python" -m pip install --quiet --upgrade pip
"$TMP/venv/bin/python" -m pip install --quiet torch==2.13.0
"$TMP/venv/bin/python" -m pip install --quiet "$HERE[test,notebook]"
{
  echo "# requirements.lock: every runtime and test dependency of Attention Explorer, pinned."
  echo "# Written by \`make lock\` (scripts/lock.sh) with $("$TMP/venv/bin/python" --version) on $(date -u +%Y-%m-%d);"
  echo "# installed by \`make run\` / \`make test\` / CI as pip constraints (-c). Do not edit by hand."
  "$TMP/venv/bin/python" -m pip freeze --all --exclude-editable \
    | grep -v -i -E '^(attention-explorer|pip|setuptools|wheel)( @ |==)' \
    | sed -E 's/^torch==([0-9.]+)\+cpu$/torch==\1/' \
    | LC_ALL=C sort -f
} > "$HERE/$LOCK.tmp"
mv "$HERE/$LOCK.tmp" "$HERE/$LOCK"
echo "wrote $LOCK ($(grep -c '==' "$HERE/$LOCK") packages)"
