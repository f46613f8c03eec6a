#!/usr/bin/env bash
# Sets up a fresh checkout and runs every check: lint, types, and the test suite on SQLite
# and PostgreSQL (a local PostgreSQL is set up when TEST_POSTGRES_URL is not given).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .
exec .venv/bin/python -m pytest "$@"
