"""Calls from the emulated Forge platform to an app's remote: ``invoke_remote`` and lifecycle
event delivery with Forge's retries, against a fake remote on 127.0.0.1."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from connect_settings.host import Emulator
from tests.host_forge_support import HOLD, FakeRemote, forge_call, verify_fit

pytest_plugins = ["tests.host_fixtures"]


@pytest.fixture
def remote() -> Iterator[FakeRemote]:
    fake = FakeRemote().start()
    try:
        yield fake
    finally:
        fake.stop()


def test_invoke_remote_sends_the_documented_headers(
    host_installed: Emulator, remote: FakeRemote
) -> None:
    emu = host_installed
    response = emu.invoke_remote(
        remote.url + "/forge/settings?tab=1",
        principal=emu.account_id,
        context={},
        module_key="settings-page",
        module_type="jira:adminPage",
        user_token=True,
    )
    assert response.status_code == 204
    (request,) = remote.requests
    assert (request.method, request.path) == ("GET", "/forge/settings?tab=1")
    claims = verify_fit(emu, request.fit)
    assert claims["principal"] == emu.account_id
    assert claims["context"]["moduleKey"] == "settings-page"
    assert claims["app"]["module"] == {"type": "jira:adminPage", "key": "settings-page"}
    assert re.fullmatch(r"[0-9a-f]{32}", request.headers["x-b3-traceid"])
    assert re.fullmatch(r"[0-9a-f]{16}", request.headers["x-b3-spanid"])
    # The system token the remote received opens the product API under apiBaseUrl.
    system = request.headers["x-forge-oauth-system"]
    assert forge_call(emu, "GET", token=system).status_code == 200
    assert forge_call(emu, "GET", token=request.headers["x-forge-oauth-user"]).status_code == 200


def test_no_user_token_without_a_user_and_no_system_token_when_off(
    host_site: Emulator, remote: FakeRemote
) -> None:
    host_site.invoke_remote(remote.url + "/a", user_token=True)
    host_site.invoke_remote(remote.url + "/b", principal=host_site.account_id)
    host_site.invoke_remote(remote.url + "/c", system_token=False)
    first, second, third = remote.requests
    assert "x-forge-oauth-user" not in first.headers and "x-forge-oauth-system" in first.headers
    assert "principal" not in verify_fit(host_site, first.fit)
    assert "x-forge-oauth-user" not in second.headers
    assert "x-forge-oauth-system" not in third.headers
    # Every call has its own FIT and its own trace.
    assert len({r.fit for r in remote.requests}) == 3
    assert len({r.headers["x-b3-traceid"] for r in remote.requests}) == 3


def test_invoke_remote_posts_json(host_site: Emulator, remote: FakeRemote) -> None:
    remote.script(200)
    response = host_site.invoke_remote(remote.url + "/save", "POST", json={"colour": "blue"})
    assert response.status_code == 200
    (request,) = remote.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"colour": "blue"}


def test_an_installed_event_delivered_plain(host_installed: Emulator, remote: FakeRemote) -> None:
    emu = host_installed
    results = emu.deliver_forge_event(remote.url + "/forge/events")
    assert [(r.attempt, r.status, r.ok) for r in results] == [(1, 204, True)]
    (request,) = remote.requests
    assert request.method == "POST" and request.path == "/forge/events"
    assert request.headers["content-type"] == "application/json"
    event = request.json()
    installation_uuid = emu.forge_installation_id.rsplit("/", 1)[1]
    assert event == {
        "eventType": "avi:forge:installed:app",
        "id": installation_uuid,
        "context": f"ari:cloud:{emu.product.name}::site/{emu.cloud_id}",
        "installerAccountId": emu.account_id,
        "app": {
            "id": emu.forge_app_id.rsplit("/", 1)[1],
            "version": "1.0.0",
            "name": "Fake app",
        },
        "environment": {"id": event["environment"]["id"]},
    }
    claims = verify_fit(emu, request.fit)
    assert claims["jti"] == results[0].jti
    assert claims["app"]["module"]["type"] == "core:endpoint"
    assert "principal" not in claims and "context" not in claims
    assert forge_call(emu, "GET", token=request.headers["x-forge-oauth-system"]).status_code == 200
    assert emu.forge_deliveries == results


def test_an_event_delivered_wrapped(host_site: Emulator, remote: FakeRemote) -> None:
    results = host_site.deliver_forge_event(
        remote.url, "avi:forge:upgraded:app", wrapped=True, retry_delay=0
    )
    assert len(results) == 1 and results[0].wrapped
    body = remote.requests[0].json()
    assert set(body) == {"payload"}  # a first attempt has nothing to retry
    assert body["payload"]["eventType"] == "avi:forge:upgraded:app"
    assert body["payload"]["upgraderAccountId"] == host_site.account_id


def test_a_failing_remote_gets_retries_wrapped_with_a_retry_context(
    host_site: Emulator, remote: FakeRemote
) -> None:
    remote.script(500, 503)
    results = host_site.deliver_forge_event(remote.url, retry_delay=0.05)
    assert [(r.attempt, r.status, r.ok) for r in results] == [
        (1, 500, False),
        (2, 503, False),
        (3, 204, True),
    ]
    first, second, third = (r.json() for r in remote.requests)
    assert first["eventType"] == "avi:forge:installed:app"  # plain
    assert second == {
        "payload": first,
        "retryContext": {"retryCount": 1, "retryReason": "FUNCTION_ERROR"},
    }
    assert third["retryContext"]["retryCount"] == 2
    # A redelivery: the same event id, a new FIT (new jti) each time.
    assert {r.event_id for r in results} == {first["id"]}
    jtis = [verify_fit(host_site, r.fit)["jti"] for r in remote.requests]
    assert len(set(jtis)) == 3 and jtis == [r.jti for r in results]
    assert "HTTP 500" in results[0].detail


def test_four_attempts_at_most_then_it_stops(host_site: Emulator, remote: FakeRemote) -> None:
    remote.script(500, 500, 500, 500, 500)
    started = time.monotonic()
    results = host_site.deliver_forge_event(remote.url, retry_delay=0.05)
    assert [r.status for r in results] == [500, 500, 500, 500]
    assert len(remote.requests) == 4
    assert time.monotonic() - started >= 3 * 0.05  # the delay between attempts is kept


def test_a_remote_that_does_not_answer_in_time_is_retried(
    host_site: Emulator, remote: FakeRemote
) -> None:
    remote.script(HOLD, HOLD, HOLD, HOLD)
    results = host_site.deliver_forge_event(remote.url, retry_delay=0, timeout=0.2)
    assert [(r.status, r.ok) for r in results] == [(None, False)] * 4
    assert all(r.detail == "no answer within 0.2 s" for r in results)
    assert len(remote.requests) == 4
    assert remote.requests[1].json()["retryContext"] == {
        "retryCount": 1,
        "retryReason": "FUNCTION_TIMEOUT",
    }


def test_a_remote_that_is_down(host_site: Emulator) -> None:
    results = host_site.deliver_forge_event("http://127.0.0.1:1/events", retry_delay=0)
    assert len(results) == 4
    assert all(r.status is None and "could not connect" in r.detail for r in results)


def test_attempts_are_configurable(host_site: Emulator, remote: FakeRemote) -> None:
    remote.script(500, 500)
    results = host_site.deliver_forge_event(remote.url, attempts=2, retry_delay=0)
    assert [r.status for r in results] == [500, 500]


def test_delivery_needs_an_endpoint_and_a_known_event(host_site: Emulator) -> None:
    with pytest.raises(LookupError, match="No Forge events endpoint"):
        host_site.deliver_forge_event()
    with pytest.raises(ValueError, match="Unknown Forge event"):
        host_site.deliver_forge_event("http://127.0.0.1:1/", "avi:forge:uninstalled:app")
