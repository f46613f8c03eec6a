#!/usr/bin/env bash
# Source this file to get a local PostgreSQL for the tests: installs Debian's server when
# missing (as root), starts the cluster, creates a superuser role, and exports
# TEST_POSTGRES_URL. Leaves an already exported TEST_POSTGRES_URL alone.
# Usage: source scripts/postgres.sh
if [ -n "${TEST_POSTGRES_URL:-}" ]; then
  return 0 2>/dev/null || exit 0
fi
_pg_setup() {
  if [ "$(id -u)" != "0" ]; then
    echo "note: not root; set TEST_POSTGRES_URL to run the PostgreSQL tests" >&2
    return 1
  fi
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "Installing Debian's postgresql..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null || return 1
  fi
  local version
  version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
  if ! pg_lsclusters -h 2>/dev/null | grep -q "^$version main"; then
    pg_createcluster "$version" main >/dev/null || return 1
  fi
  pg_ctlcluster "$version" main start 2>/dev/null || true
  local port
  port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
  for _ in $(seq 1 30); do
    runuser -u postgres -- pg_isready -q -p "$port" && break
    sleep 1
  done
  runuser -u postgres -- psql -q -p "$port" -tc \
    "SELECT 1 FROM pg_roles WHERE rolname = 'crisis_test'" | grep -q 1 || \
    runuser -u postgres -- psql -q -p "$port" -c \
      "CREATE ROLE crisis_test LOGIN SUPERUSER PASSWORD 'crisis_test'" >/dev/null || return 1
  runuser -u postgres -- psql -q -p "$port" -tc \
    "SELECT 1 FROM pg_database WHERE datname = 'crisis_test'" | grep -q 1 || \
    runuser -u postgres -- createdb -p "$port" -O crisis_test crisis_test || return 1
  export TEST_POSTGRES_URL="postgresql+asyncpg://crisis_test:crisis_test@127.0.0.1:$port/crisis_test"
  echo "PostgreSQL for the tests: 127.0.0.1:$port/crisis_test" >&2
}
_pg_setup || true
unset -f _pg_setup
