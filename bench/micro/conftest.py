"""Micro-benchmarks run with ``pytest bench/micro --ds=bench.settings`` (see README,
"Benchmarks"); ``testpaths`` keeps them out of the test command."""

from __future__ import annotations

import pytest

import connect_settings.testing


def pytest_configure(config: pytest.Config) -> None:
    # Registered by the package's entry point once installed; otherwise register it here.
    if not config.pluginmanager.is_registered(connect_settings.testing):
        config.pluginmanager.register(connect_settings.testing, "connect_settings.testing")
