"""Shared test configuration."""

from __future__ import annotations

import pytest

import connect_settings.testing


def pytest_configure(config: pytest.Config) -> None:
    # Once the package is pip-installed, its pytest11 entry point registers this plugin as
    # "connect_settings"; `pytest_plugins = ["connect_settings.testing"]` would then register
    # the same module a second time and pluggy refuses that ("Plugin already registered under
    # a different name"). So register it only when the entry point has not.
    if not config.pluginmanager.is_registered(connect_settings.testing):
        config.pluginmanager.register(connect_settings.testing, "connect_settings.testing")
