"""The Forge operations of the control API, the ``connect_host`` subcommands and the admin
page, against running emulators."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import requests

from connect_settings.host import Emulator
from connect_settings.host.cli import main
from tests.host_forge_support import FakeRemote, forge_call, verify_fit
from tests.host_support import APP_KEY, FakeApp, app_jwt, assert_error, call, prop_url

pytest_plugins = ["tests.host_fixtures"]


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out)
    return code, out.getvalue()


@pytest.fixture
def remote() -> Iterator[FakeRemote]:
    fake = FakeRemote().start()
    try:
        yield fake
    finally:
        fake.stop()


def test_forge_shows_and_registers_the_events_endpoint(host_site: Emulator) -> None:
    url = host_site.url
    code, out = cli("forge", "--emulator", url)
    assert code == 0
    shown = json.loads(out)
    assert shown["appId"] == host_site.forge_app_id
    assert shown["cloudId"] == host_site.cloud_id
    assert shown["eventsUrl"] is None
    code, out = cli("forge", "--events-url", "http://127.0.0.1:9/forge/events", "--emulator", url)
    assert json.loads(out)["eventsUrl"] == "http://127.0.0.1:9/forge/events"
    assert host_site.forge_events_url == "http://127.0.0.1:9/forge/events"
    cli("forge", "--no-events-url", "--emulator", url)
    assert host_site.forge_events_url is None


def test_forge_fit_and_system_token_from_the_command_line(host_installed: Emulator) -> None:
    url = host_installed.url
    code, out = cli(
        "forge-fit",
        "--principal",
        host_installed.account_id,
        "--context",
        '{"extension": {"type": "jira:adminPage"}}',
        "--module-key",
        "admin",
        "--emulator",
        url,
    )
    assert code == 0
    claims = verify_fit(host_installed, out.strip())
    assert claims["principal"] == host_installed.account_id
    assert claims["context"]["extension"] == {"type": "jira:adminPage"}
    assert claims["app"]["module"]["key"] == "admin"
    code, out = cli("system-token", "--ttl", "600", "--emulator", url)
    assert code == 0
    assert forge_call(host_installed, "GET", token=out.strip()).status_code == 200
    code, _ = cli("system-token", "--ttl", "999999", "--emulator", url)
    assert code == 1
    code, _ = cli("forge-fit", "--context", "{nope", "--emulator", url)
    assert code == 1


def test_move_and_reinstall_from_the_command_line(
    host_installed: Emulator, host_app: FakeApp, remote: FakeRemote
) -> None:
    url = host_installed.url
    before = host_app.events()
    installation = host_installed.forge_installation_id
    connect_token = app_jwt(host_installed, "GET", prop_url(host_installed))
    code, out = cli("move-to-forge", "--emulator", url)
    assert code == 0
    assert out.startswith(f"Moved {APP_KEY} to Forge")
    assert installation in out
    assert host_app.events() == before
    assert_error(call(host_installed, "GET", token=connect_token), 401)

    cli("forge", "--events-url", remote.url, "--emulator", url)
    code, out = cli("forge-reinstall", "--emulator", url)
    assert code == 0
    assert host_installed.forge_installation_id != installation
    assert host_installed.forge_installation_id in out
    assert "avi:forge:installed:app attempt 1 -> HTTP 204" in out
    code, _ = cli("move-to-forge", "--emulator", url)
    assert code == 1  # nothing left to move


def test_forge_event_from_the_command_line(host_site: Emulator, remote: FakeRemote) -> None:
    url = host_site.url
    remote.script(500)
    code, out = cli(
        "forge-event",
        remote.url,
        "--type",
        "upgraded",
        "--retry-delay",
        "0",
        "--emulator",
        url,
    )
    assert code == 0
    assert out.splitlines() == [
        '  avi:forge:upgraded:app attempt 1 -> HTTP 500: {"status": 500}',
        "  avi:forge:upgraded:app attempt 2 -> HTTP 204",
        "Delivered.",
    ]
    remote.script(500, 500)
    code, out = cli(
        "forge-event", remote.url, "--attempts", "2", "--retry-delay", "0", "--emulator", url
    )
    assert code == 1
    code, _ = cli("forge-event", "--emulator", url)
    assert code == 1  # no endpoint registered


def test_the_control_api_checks_what_it_is_sent(host_site: Emulator) -> None:
    base = f"{host_site.url}/_emulator/forge"
    for path, body in [
        ("/fit", {"ttl": "25"}),
        ("/fit", {"context": []}),
        ("/fit", {"ttl": 0}),
        ("/events", {"url": "http://127.0.0.1:1/", "attempts": 11}),
        ("/events", {"url": "http://127.0.0.1:1/", "wrapped": 1}),
        ("/events", {"url": "http://127.0.0.1:1/", "eventType": "avi:forge:deleted:app"}),
    ]:
        assert_error(requests.post(base + path, json=body, timeout=10), 400)
    assert_error(requests.put(base, json={"eventsUrl": "javascript:x"}, timeout=10), 400)
    assert_error(requests.post(base + "/nope", json={}, timeout=10), 404)
    assert_error(requests.post(base + "/move", json={}, timeout=10), 404)
    assert_error(requests.delete(base, timeout=10), 405)
    assert requests.get(base + "/events", timeout=10).json() == {"deliveries": []}


def test_the_admin_page_shows_the_forge_side_and_the_move_button(
    host_installed: Emulator,
) -> None:
    html = requests.get(host_installed.url + "/", timeout=10).text
    assert host_installed.forge_app_id in html
    assert host_installed.cloud_id in html
    assert host_installed.forge_installation_id in html
    assert host_installed.forge_jwks_url in html
    assert 'data-forge="move"' in html and "CONNECT ON FORGE" in html
    host_installed.move_to_forge()
    html = requests.get(host_installed.url + "/", timeout=10).text
    assert 'data-forge="move"' not in html and "FORGE ONLY" in html
