"""Faults (short): PostgreSQL restarted under load (a private throwaway cluster), host
429/5xx/timeouts/drops/refused connections while mirroring, a worker killed mid-delivery, the key
server down during an install, disabled + uninstalled at once in both orders."""

from __future__ import annotations

from pathlib import Path

import pytest
from resilience_support import needs_postgres_and_gunicorn, run_short

pytestmark = pytest.mark.postgres


def test_faults_suite_short(tmp_path: Path) -> None:
    needs_postgres_and_gunicorn()
    result = run_short("faults", tmp_path)
    assert all(check["tried"] > 0 or check["skipped"] for check in result["checks"])
