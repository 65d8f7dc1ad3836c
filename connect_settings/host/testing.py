"""pytest fixtures that start host emulators on free 127.0.0.1 ports and stop them after.

``connect_settings.testing`` re-exports them, so a project that uses the plugin gets them::

    def test_install(connect_host, live_server):
        connect_host.install(live_server.url)
        response = requests.get(connect_host.page_url())
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .emulator import Emulator

__all__ = ["connect_host", "connect_host_confluence", "connect_host_factory"]

EmulatorFactory = Callable[..., Emulator]


@pytest.fixture
def connect_host_factory() -> Iterator[EmulatorFactory]:
    """Start emulators with any options (``make("confluence", state_file=...)``); all are
    stopped after the test."""
    started: list[Emulator] = []

    def make(product: str = "jira", **options: Any) -> Emulator:
        emulator = Emulator(product, **options).start()
        started.append(emulator)
        return emulator

    try:
        yield make
    finally:
        for emulator in reversed(started):
            emulator.stop()


@pytest.fixture
def connect_host(connect_host_factory: EmulatorFactory) -> Emulator:
    """A started Jira emulator on a free port."""
    return connect_host_factory("jira")


@pytest.fixture
def connect_host_confluence(connect_host_factory: EmulatorFactory) -> Emulator:
    """A started Confluence emulator on a free port (base URL ending in ``/wiki``)."""
    return connect_host_factory("confluence")
