"""The outgoing client and app properties, against the host emulator over real HTTP."""

from __future__ import annotations

import time

import pytest
import requests

from connect_settings.client import HostClient, HostError, HostUnavailable
from connect_settings.jwt.tokens import read_unverified
from connect_settings.properties import (
    MAX_PROPERTIES,
    RESERVED_KEY,
    AppProperties,
    PropertyLimitError,
)


@pytest.fixture
def fast_retries(settings):
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "HTTP_BACKOFF_FACTOR": 0.01,
        "HTTP_RETRY_MAX_WAIT": 5.0,
        "HTTP_TIMEOUT": 2.0,
    }


@pytest.mark.parametrize("product", ["jira", "confluence"])
def test_properties_round_trip(connect_live_install, fast_retries, product):
    emulator, tenant = connect_live_install(product)
    props = AppProperties(tenant)
    assert props.list() == []
    assert props.put("colour", {"shade": "blue", "n": [1, 2]}) is True
    assert props.put("colour", {"shade": "red"}) is False
    assert props.get("colour") == {"shade": "red"}
    assert props.get("absent", default="none") == "none"
    assert props.list() == ["colour"]
    assert emulator.properties()["colour"] == {"shade": "red"}
    assert props.delete("colour") is True
    assert props.delete("colour") is False
    # The reserved property is readable and names our clientKey.
    assert props.get(RESERVED_KEY) == tenant.client_key


def test_confluence_qsh_is_relative_to_wiki(connect_live_install, fast_retries):
    _emulator, tenant = connect_live_install("confluence")
    assert tenant.base_url.endswith("/wiki")
    response = HostClient(tenant).get(
        f"/rest/atlassian-connect/1/addons/{tenant.addon_key}/properties"
    )
    assert response.status_code == 200
    assert response.request.headers["User-Agent"].startswith("django-connect-settings/")
    _, claims = read_unverified(response.request.headers["Authorization"].split(" ", 1)[1])
    assert claims["iss"] == "com.example.connect-settings-demo"
    assert claims["exp"] - claims["iat"] == 180


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("k" * 128, 1, "at most 127"),
        ("", 1, "non-empty"),
        (RESERVED_KEY, 1, "read-only"),
        ("big", "x" * 32767, "at most 32768"),
        ("nan", float("nan"), "must be JSON"),
        ("obj", object(), "must be JSON"),
    ],
)
def test_limits_refused_locally(connect_live_install, fast_retries, key, value, message):
    emulator, tenant = connect_live_install()
    tripwire = emulator.add_fault(delay=0.001, count=100)  # every REST call consumes one
    with pytest.raises(PropertyLimitError, match=message):
        AppProperties(tenant).put(key, value, known_keys=set())
    assert emulator.properties() == {}
    assert tripwire.remaining == 100


def test_value_at_the_limit_is_accepted(connect_live_install, fast_retries):
    emulator, tenant = connect_live_install()
    value = "x" * (32768 - 2)  # the quotes make 32768 characters of JSON
    tripwire = emulator.add_fault(delay=0.001, count=100)
    AppProperties(tenant).put("edge", value, known_keys=set())
    assert emulator.properties()["edge"] == value
    assert tripwire.remaining == 99  # the tripwire does see requests


def test_101st_property_refused_before_sending(connect_live_install, fast_retries):
    emulator, tenant = connect_live_install()
    props = AppProperties(tenant)
    for i in range(MAX_PROPERTIES):
        emulator.set_property(f"p{i}", i)
    assert len(props.list()) == MAX_PROPERTIES
    tripwire = emulator.add_fault(delay=0.001, count=100, method="PUT")
    with pytest.raises(PropertyLimitError, match="at most 100"):
        props.put("one-too-many", 1)
    assert tripwire.remaining == 100  # no PUT was sent
    emulator.clear_faults()
    assert len(emulator.properties()) == MAX_PROPERTIES
    props.put("p5", "updated")  # replacing an existing one is fine
    assert emulator.properties()["p5"] == "updated"


def test_429_with_retry_after_is_waited_out(connect_live_install, fast_retries):
    emulator, tenant = connect_live_install()
    emulator.add_fault(429, count=2, retry_after=1, method="PUT")
    started = time.monotonic()
    AppProperties(tenant).put("k", 1, known_keys=set())
    elapsed = time.monotonic() - started
    assert emulator.properties()["k"] == 1
    assert elapsed >= 2.0  # two Retry-After: 1 honoured


def test_retry_after_beyond_budget_is_reported_not_shortened(connect_live_install, fast_retries):
    emulator, tenant = connect_live_install()
    emulator.add_fault(429, count=1, retry_after=120, method="PUT")
    started = time.monotonic()
    with pytest.raises(HostError) as info:
        AppProperties(tenant).put("k", 1, known_keys=set())
    assert time.monotonic() - started < 2.0
    assert info.value.status_code == 429
    assert info.value.retry_after == 120
    assert info.value.code == "host_rate_limited"
    assert emulator.properties() == {}


def test_503_retried_then_error_with_response(connect_live_install, fast_retries):
    emulator, tenant = connect_live_install()
    emulator.add_fault(503, count=10, method="PUT")
    with pytest.raises(HostError) as info:
        AppProperties(tenant).put("k", 1, known_keys=set())
    assert info.value.status_code == 503
    assert isinstance(info.value.response, requests.Response)
    assert tenant.shared_secret not in str(info.value)
    emulator.clear_faults()
    emulator.add_fault(503, count=2, method="PUT")
    AppProperties(tenant).put("k", 2, known_keys=set())
    assert emulator.properties()["k"] == 2


def test_post_is_not_retried(connect_live_install, fast_retries):
    emulator, tenant = connect_live_install()
    emulator.add_fault(503, count=1, method="POST")
    with pytest.raises(HostError) as info:
        HostClient(tenant).post("/rest/api/3/anything", json={})
    assert info.value.status_code == 503


def test_unreachable_host_is_host_unavailable(connect_live_install, fast_retries):
    emulator, tenant = connect_live_install()
    emulator.stop()
    with pytest.raises(HostUnavailable) as info:
        AppProperties(tenant).put("k", 1, known_keys=set())
    assert info.value.status == 503
    assert tenant.shared_secret not in str(info.value)


def test_reinstall_uses_new_secret(connect_live_install, fast_retries):
    from connect_settings.models import Tenant

    emulator, tenant = connect_live_install()
    emulator.reinstall()
    fresh = Tenant.objects.get(pk=tenant.pk)
    with pytest.raises(HostError) as info:
        AppProperties(tenant).put("k", 1, known_keys=set())  # the stale row's old secret
    assert info.value.status_code == 401
    AppProperties(fresh).put("k", 1, known_keys=set())
    assert emulator.properties()["k"] == 1
