"""Load (short): a bounded mixed workload against gunicorn + PostgreSQL: zero 5xx, every
accepted save stored, the mirror in sync afterwards, RSS stops growing."""

from __future__ import annotations

from pathlib import Path

import pytest
from resilience_support import needs_postgres_and_gunicorn, run_short

pytestmark = pytest.mark.postgres


def test_load_suite_short(tmp_path: Path) -> None:
    needs_postgres_and_gunicorn()
    result = run_short("load", tmp_path)
    assert all(check["tried"] > 0 or check["skipped"] for check in result["checks"])
