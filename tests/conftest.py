"""Shared test configuration."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from redis_support import redis_answers

import connect_settings.testing
from connect_settings import tenants


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


@pytest.fixture
def redis_cache(settings: Any) -> Iterator[Any]:
    """Redis as ``TENANT_CACHE`` (a key prefix of this test's own), so that processes keep
    local copies; skipped without Redis, except under CI."""
    if not redis_answers():
        if os.environ.get("CI") == "true":
            pytest.fail("Redis does not answer on 127.0.0.1:6379 (CI=true: it must)")
        pytest.skip("needs Redis on 127.0.0.1:6379 (CI has it)")
    settings.CACHES = {
        **settings.CACHES,
        "tenants": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/12",
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        },
    }
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "TENANT_CACHE": "tenants"}
    yield caches["tenants"]
    tenants._local.reset()
