#!/usr/bin/env bash
# Sets up a fresh checkout: a virtual environment in .venv with the project installed,
# and the compiled translation catalogs. `--test` also installs the test tools and,
# when run as root on Debian, the Chromium the browser tests drive.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --editable ".${extras}"
.venv/bin/pybabel compile --domain messages --directory locales --statistics 2>&1 \
  | grep -v '^compiling' || true

if [ "${1:-}" = "--test" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's chromium for the browser tests..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "note: /usr/bin/chromium is missing; the browser tests will be skipped (install 'chromium')."
  fi
fi
