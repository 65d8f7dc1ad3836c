#!/usr/bin/env bash
# Fresh clone -> running demo: a virtualenv, the SQLite database, and the demo app on
# http://127.0.0.1:8000. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
.venv/bin/python manage.py migrate --noinput
exec .venv/bin/python manage.py runserver 127.0.0.1:8000
