"""A stopped emulator is down for every client, kept-alive connections included."""

from __future__ import annotations

import pytest
import requests

from connect_settings.host import Emulator


def test_stop_ends_kept_alive_connections():
    emulator = Emulator("jira").start()
    url = f"{emulator.url}/"
    session = requests.Session()
    try:
        assert session.get(url, timeout=5).status_code == 200  # the connection is kept alive
        emulator.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(url, timeout=5)
    finally:
        session.close()
        emulator.stop()
