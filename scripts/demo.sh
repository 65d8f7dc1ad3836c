#!/usr/bin/env bash
# Fresh clone -> running demo: a virtualenv, the SQLite database, the demo app on
# http://127.0.0.1:8000 and a local Jira emulator with the app installed into it. It prints
# the URL to open; Ctrl-C stops both. Extra arguments go to `manage.py connect_demo`
# (e.g. --product confluence).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
exec .venv/bin/python manage.py connect_demo "$@"
