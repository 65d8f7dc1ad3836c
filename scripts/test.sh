#!/usr/bin/env bash
# The whole test suite from a fresh clone: lint, migrations check, and pytest on
#   - Python 3.11 + Django 5.2 (SQLite, and PostgreSQL when reachable),
#   - Python 3.12 + Django 6.x (the same), when a Python 3.12 is installed.
# Under CI=true, PostgreSQL, Python 3.12 and node are mandatory: their absence fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

CI="${CI:-false}"
# npm packages the interop tests install (ACE's sqlite3 compiles for a minute) are kept here
# across the runs below instead of once per run.
export CONNECT_TEST_NPM_DIR="${CONNECT_TEST_NPM_DIR:-$PWD/.cache/npm}"
PG_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
failures=()

find_python312() {
  if command -v python3.12 >/dev/null && PYENV_VERSION=3.12.1 python3.12 --version >/dev/null 2>&1; then
    echo "env PYENV_VERSION=3.12.1 python3.12"
  elif command -v python3.13 >/dev/null && PYENV_VERSION=3.13.0 python3.13 --version >/dev/null 2>&1; then
    echo "env PYENV_VERSION=3.13.0 python3.13"
  fi
}

setup_venv() {  # setup_venv DIR PYTHON...
  local dir=$1; shift
  if [ ! -x "$dir/bin/python" ]; then
    "$@" -m venv "$dir"
  fi
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$dir/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]"
}

postgres_up() {
  "$1/bin/python" - "$PG_URL" <<'PY' >/dev/null 2>&1
import sys, psycopg
psycopg.connect(sys.argv[1].replace("postgres://", "postgresql://"), connect_timeout=3).close()
PY
}

run_suite() {  # run_suite VENV LABEL [PREPARED]
  # PREPARED=true runs the PostgreSQL pass with prepared statements (server-side binding),
  # as the benchmark deploys it; the other pass keeps Django's default.
  local venv=$1 label=$2 prepared=${3:-false}
  local django_version
  django_version=$("$venv/bin/python" -c 'import django; print(django.get_version())')
  echo "== pytest: $label, Django $django_version, SQLite"
  DATABASE_URL="sqlite:///:memory:" "$venv/bin/python" -m pytest -q || failures+=("$label/sqlite")
  if postgres_up "$venv"; then
    echo "== pytest: $label, Django $django_version, PostgreSQL (prepared statements: $prepared)"
    DATABASE_URL="$PG_URL" DATABASE_PREPARED_STATEMENTS="$prepared" "$venv/bin/python" -m pytest -q \
      || failures+=("$label/postgresql")
  elif [ "$CI" = "true" ]; then
    echo "PostgreSQL is not reachable at $PG_URL, and CI=true requires it." >&2
    failures+=("$label/postgresql-unreachable")
  else
    echo "== PostgreSQL not reachable at $PG_URL: skipping the PostgreSQL run (CI requires it)."
  fi
}

# The browser tests drive Debian's Chromium (Playwright cannot download browsers here).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "== installing Chromium for the browser tests (apt-get)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "Chromium could not be installed; browser tests will skip (fail under CI=true)." >&2
  else
    echo "== /usr/bin/chromium is missing: browser tests will skip (fail under CI=true)."
  fi
fi

echo "== setting up .venv (python3)"
setup_venv .venv python3
echo "== ruff"
.venv/bin/ruff check . || failures+=("ruff-check")
.venv/bin/ruff format --check . || failures+=("ruff-format")
echo "== makemigrations --check"
DATABASE_URL="sqlite:///:memory:" .venv/bin/python manage.py makemigrations --check --dry-run \
  || failures+=("makemigrations")
run_suite .venv "py3.11"

py312=$(find_python312)
if [ -n "$py312" ]; then
  echo "== setting up .venv-django6 ($py312)"
  # shellcheck disable=SC2086
  setup_venv .venv-django6 $py312
  run_suite .venv-django6 "py3.12" true
elif [ "$CI" = "true" ]; then
  echo "No Python >= 3.12 found, and CI=true requires the Django 6 run." >&2
  failures+=("django6-missing")
else
  echo "== no Python 3.12 found: skipping the Django 6 run (CI requires it)."
fi

if [ ${#failures[@]} -gt 0 ]; then
  echo "FAILED: ${failures[*]}" >&2
  exit 1
fi
echo "All test runs passed."
