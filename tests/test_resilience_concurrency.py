"""Concurrency (short): two admins save the same configuration 50 times each at once:
every save lands or gets 409, one history entry per landed save, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from resilience_support import needs_postgres_and_gunicorn, run_short

pytestmark = pytest.mark.postgres


def test_concurrency_suite_short(tmp_path: Path) -> None:
    needs_postgres_and_gunicorn()
    result = run_short("concurrency", tmp_path)
    assert all(check["tried"] > 0 or check["skipped"] for check in result["checks"])
