"""Shared test configuration."""

from __future__ import annotations

from typing import Any

import pytest

import connect_settings.testing


def pytest_configure(config: pytest.Config) -> None:
    # Once the package is pip-installed, its pytest11 entry point registers this plugin as
    # "connect_settings"; `pytest_plugins = ["connect_settings.testing"]` would then register
    # the same module a second time and pluggy refuses that ("Plugin already registered under
    # a different name"). So register it only when the entry point has not.
    if not config.pluginmanager.is_registered(connect_settings.testing):
        config.pluginmanager.register(connect_settings.testing, "connect_settings.testing")


@pytest.fixture(autouse=True)
def _no_mirroring_unless_asked(settings: Any) -> None:
    # The demo settings mirror two configure fields; most tests' tenants live on hosts that do
    # not exist here (example.atlassian.net), so mirroring is off unless a test turns it on.
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "MIRROR": []}
