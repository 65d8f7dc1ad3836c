"""Running a resilience suite's short version in its own process, for the pytest wrappers."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def needs_postgres_and_gunicorn() -> None:
    """Skip on the SQLite pass (CI runs the PostgreSQL pass); gunicorn is in the dev extra,
    so its absence fails under CI=true instead of skipping."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL and gunicorn: runs in the PostgreSQL pass (CI does)")
    if importlib.util.find_spec("gunicorn") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("gunicorn is missing (pip install -e '.[resilience]')")
        pytest.skip("gunicorn is missing: pip install -e '.[resilience]'")


def run_short(suite: str, tmp_path: Path, timeout: float = 240) -> dict[str, Any]:
    """``python -m resilience.run SUITE --short``; its JSON result (the table is printed)."""
    out = tmp_path / f"{suite}.json"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "resilience.run", suite, "--short", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    print(done.stdout[-6000:])
    assert out.exists(), f"the {suite} suite crashed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result = json.loads(out.read_text())
    assert result["ok"], done.stdout[-6000:]
    assert done.returncode == 0
    return result
