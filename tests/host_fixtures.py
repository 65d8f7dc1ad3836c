"""Fixtures of the host emulator's tests, loaded by them with ``pytest_plugins``.

Kept apart from :mod:`tests.host_support` (which the tests import) so pytest can load this
module itself and rewrite its asserts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connect_settings.host import Emulator
from connect_settings.host.testing import EmulatorFactory, connect_host_factory
from tests.host_support import FakeApp

__all__ = ["connect_host_factory", "host_app", "host_installed", "host_site"]


@pytest.fixture(params=["jira", "confluence"])
def host_site(request: pytest.FixtureRequest, connect_host_factory: EmulatorFactory) -> Emulator:
    """A started emulator of each product in turn."""
    return connect_host_factory(request.param)


@pytest.fixture
def host_app(host_site: Emulator) -> Iterator[FakeApp]:
    """The fake Connect app, trusting ``host_site``'s key server."""
    app = FakeApp(key_server=host_site.key_server_url).start()
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture
def host_installed(host_site: Emulator, host_app: FakeApp) -> Emulator:
    """The site with the fake app installed (and enabled)."""
    host_site.install(host_app.base_url)
    return host_site
