#!/bin/sh
# Makes sure `$PYTHON -m venv` can work before `make` creates .venv (called by the Makefile).
# Debian's python3 has no venv/ensurepip until python3.X-venv is installed: as root (or with sudo)
# this installs it with apt-get; otherwise it says exactly what to install and stops.
set -eu
PYTHON=${1:-python3}

has_venv() { "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; }

if has_venv; then
  exit 0
fi
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "make: $PYTHON was not found. Install Python 3.11 or later (Debian: apt-get install python3 python3-venv)." >&2
  exit 1
fi
version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pkg="python$version-venv"
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    SUDO=""
  elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "make: Python's venv module is missing. Install it as root with: apt-get install $pkg (or: sudo apt-get install $pkg), then run make again." >&2
    exit 1
  fi
  echo "make: Python's venv module is missing; installing $pkg with apt-get"
  if $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "$pkg" && has_venv; then
    exit 0
  fi
  echo "make: could not install $pkg. Install it with: sudo apt-get install $pkg, then run make again." >&2
  exit 1
fi
echo "make: Python's venv module is missing. Install your system's venv package for Python $version (Debian and Ubuntu: $pkg), then run make again." >&2
exit 1
