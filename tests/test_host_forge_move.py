"""The move from the Connect version to the Forge version, Forge reinstalls and upgrades, and
the Forge state in the state file."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from connect_settings.host import RESERVED_KEY, AppNotInstalled, Emulator
from connect_settings.host.testing import EmulatorFactory
from tests.host_forge_support import FakeRemote, forge_call, verify_fit
from tests.host_support import APP_KEY, FakeApp, app_jwt, assert_error, call, prop_url

pytest_plugins = ["tests.host_fixtures"]


@pytest.fixture
def remote() -> Iterator[FakeRemote]:
    fake = FakeRemote().start()
    try:
        yield fake
    finally:
        fake.stop()


def test_the_connect_install_carries_the_forge_installation_id(
    host_installed: Emulator, host_app: FakeApp
) -> None:
    installed = host_app.last("installed")
    assert installed.error == ""
    assert installed.body["installationId"] == host_installed.forge_installation_id
    assert host_installed.installation().installation_id == host_installed.forge_installation_id


def test_move_to_forge_removes_connect_without_a_lifecycle_event(
    host_installed: Emulator, host_app: FakeApp
) -> None:
    emu = host_installed
    assert call(emu, "PUT", "colour", '"blue"').status_code == 201
    secret = emu.shared_secret()
    installation_id = emu.forge_installation_id
    sent_before, events_before = host_app.events(), emu.events

    moved = emu.move_to_forge()

    assert moved.key == APP_KEY
    assert emu.forge_moved is True
    assert emu.installations() == []
    assert host_app.events() == sent_before  # no uninstalled, no disabled
    assert emu.events == events_before
    # The Connect app's JWTs (signed with the secret it still holds) are refused now.
    token = app_jwt(emu, "GET", prop_url(emu, "colour"), secret=secret)
    assert_error(call(emu, "GET", "colour", token=token), 401)
    # The Forge installation stays, with its properties and the reserved property.
    assert emu.forge_installation_id == installation_id
    assert forge_call(emu, "GET", "colour").json()["value"] == "blue"
    assert forge_call(emu, "GET", RESERVED_KEY).json()["value"] == emu.client_key
    assert forge_call(emu, "PUT", "after-move", "1").status_code == 201
    assert emu.properties(APP_KEY) == {"colour": "blue", "after-move": 1}
    # The admin page tells the story.
    assert emu.describe()["forge"]["movedToForge"] is True


def test_move_needs_an_installed_connect_app(host_site: Emulator) -> None:
    with pytest.raises(AppNotInstalled):
        host_site.move_to_forge()


def test_reinstall_on_forge_after_the_move(host_installed: Emulator, remote: FakeRemote) -> None:
    emu = host_installed
    emu.move_to_forge()
    emu.forge_events_url = remote.url + "/forge/events"
    old_installation, cloud_id = emu.forge_installation_id, emu.cloud_id
    old_token = emu.system_token()

    results = emu.reinstall_forge()

    assert emu.forge_installation_id != old_installation
    assert emu.cloud_id == cloud_id
    assert [r.status for r in results] == [204]
    (request,) = remote.requests
    event = request.json()
    assert event["eventType"] == "avi:forge:installed:app"
    assert event["id"] == emu.forge_installation_id.rsplit("/", 1)[1]
    claims = verify_fit(emu, request.fit)
    assert claims["app"]["installationId"] == emu.forge_installation_id
    assert claims["app"]["installation"]["contexts"][0]["cloudId"] == cloud_id
    # Tokens belong to an installation: the old one's are refused, the new one's work.
    assert_error(forge_call(emu, "GET", token=old_token), 401)
    assert forge_call(emu, "GET", token=request.headers["x-forge-oauth-system"]).status_code == 200
    assert emu.installations() == []  # the Connect version does not come back


def test_reinstall_on_forge_before_the_move_reinstalls_connect_too(
    host_installed: Emulator, host_app: FakeApp
) -> None:
    emu = host_installed
    secret = emu.shared_secret()
    assert emu.reinstall_forge() == []  # no events endpoint registered: nothing to deliver
    installed = host_app.last("installed")
    assert installed.error == ""
    assert installed.body["installationId"] == emu.forge_installation_id
    assert emu.installation().installation_id == emu.forge_installation_id
    assert emu.shared_secret() != secret


def test_upgrade_on_forge_sends_upgraded_with_a_new_major_version(
    host_installed: Emulator, remote: FakeRemote
) -> None:
    emu = host_installed
    assert emu.upgrade_forge() == []
    assert emu.forge_app_version == "2.0.0"
    emu.forge_events_url = remote.url
    results = emu.upgrade_forge()
    assert [r.event_type for r in results] == ["avi:forge:upgraded:app"]
    event = remote.requests[0].json()
    assert event["app"]["version"] == "3.0.0"
    assert verify_fit(emu, remote.requests[0].fit)["app"]["appVersion"] == "3.0.0"
    assert emu.forge_installation_id == verify_fit(emu, emu.mint_fit())["app"]["installationId"]


@pytest.mark.parametrize("product", ["jira", "confluence"])
def test_forge_state_round_trip(
    connect_host_factory: EmulatorFactory, tmp_path: Path, product: str
) -> None:
    state_file = tmp_path / "site.json"
    app_id = "ari:cloud:ecosystem::app/3f0a8a52-6d5e-4c5b-9a51-0c8b2a7f1e11"
    first = connect_host_factory(
        product, state_file=state_file, forge_app_id=app_id, forge_environment="STAGING"
    )
    app = FakeApp(key_server=first.key_server_url).start()
    try:
        first.install(app.base_url)
        first.forge_events_url = "http://127.0.0.1:1/forge/events"
        first.rotate_forge_key()
        first.move_to_forge()
        before = first.describe_forge()
        system_token = first.system_token()
        fit = first.mint_fit()
        port = first.port
        first.stop()

        saved = json.loads(state_file.read_text())
        assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
        assert [
            k["privateKey"].startswith("-----BEGIN PRIVATE KEY-----")
            for k in saved["forge"]["keys"]
        ] == [True, True]

        second = connect_host_factory(product, state_file=state_file, port=port)
        assert second.describe_forge() == before
        assert second.forge_app_id == app_id
        assert second.forge_environment == "STAGING"
        assert second.forge_moved is True
        assert second.forge_connect_key == APP_KEY
        assert second.forge_events_url == "http://127.0.0.1:1/forge/events"
        # The same keys and token secret: what was minted before the restart still holds.
        verify_fit(second, fit)
        assert forge_call(second, "GET", token=system_token).status_code == 200
    finally:
        app.stop()


def test_a_state_file_from_before_forge_gains_an_identity(
    connect_host_factory: EmulatorFactory, tmp_path: Path
) -> None:
    state_file = tmp_path / "site.json"
    connect_host_factory("jira", state_file=state_file).stop()
    data = json.loads(state_file.read_text())
    del data["forge"]
    state_file.write_text(json.dumps(data))
    emu = connect_host_factory("jira", state_file=state_file)
    assert emu.client_key == data["clientKey"]
    verify_fit(emu, emu.mint_fit())
    assert "forge" in json.loads(state_file.read_text())


def test_the_first_forge_key_is_saved_once(
    connect_host_factory: EmulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_file = tmp_path / "site.json"
    emu = connect_host_factory("jira", state_file=state_file)
    saves: list[int] = []
    original = emu.state.save
    monkeypatch.setattr(emu.state, "save", lambda: (saves.append(1), original())[1])
    kids = [k["kid"] for k in requests.get(emu.forge_jwks_url, timeout=10).json()["keys"]]
    assert [k["kid"] for k in json.loads(state_file.read_text())["forge"]["keys"]] == kids
    assert len(saves) == 1
    for _ in range(3):
        emu.mint_fit()
    assert len(saves) == 1  # minting tokens writes nothing
