#!/usr/bin/env bash
# What `make test` sets up beside the Python packages: the Debian packages whose libraries
# wheels from PyPI load without bundling them (libgomp1: LightGBM's OpenMP runtime).
#
#   scripts/test-packages.sh PYTHON      (the venv's Python, which imports them)
#
# As root with apt-get (a fresh Debian machine) they are installed; elsewhere nothing is
# changed and the tests that need them are skipped with one line naming the package
# (tests/lanes.py). The lanes that need a service or an engine of the machine -- PostgreSQL,
# Podman, the Kubernetes test cluster -- are never installed here; their tests are skipped
# with one line each that says how to add them, and CI requires every lane.
set -uo pipefail
python=${1:-python3}
missing=()
"$python" -c 'import ctypes; ctypes.CDLL("libgomp.so.1")' 2>/dev/null || missing+=(libgomp1)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "make test: installing ${missing[*]} (Debian; libraries the test dependencies load)"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null; then
    exit 0
  fi
  echo "make test: apt-get could not install ${missing[*]}: the tests that need it are skipped"
else
  echo "make test: ${missing[*]} missing: the tests that need it are skipped" \
    "(apt-get install ${missing[*]} as root adds them)"
fi
