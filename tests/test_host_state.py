"""The optional state file: a restarted emulator keeps its site, key, apps and properties."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from connect_settings.host import Emulator, StateFileError
from connect_settings.host.testing import EmulatorFactory
from tests.host_support import APP_KEY, FakeApp, app_jwt, call, prop_url

pytest_plugins = ["tests.host_fixtures"]


@pytest.mark.parametrize("product", ["jira", "confluence"])
def test_state_round_trip(
    connect_host_factory: EmulatorFactory, tmp_path: Path, product: str
) -> None:
    state_file = tmp_path / "site.json"
    first = connect_host_factory(product, state_file=state_file)
    app = FakeApp(key_server=first.key_server_url).start()
    try:
        first.install(app.base_url)
        assert call(first, "PUT", "colour", '{"v": "blue"}').status_code == 201
        first.disable()
        before = {
            "client_key": first.client_key,
            "account_id": first.account_id,
            "kid": first.kid,
            "pem": first.public_key_pem,
            "secret": first.shared_secret(),
            "installation_id": first.installation().installation_id,
        }
        port = first.port
        first.stop()

        second = connect_host_factory(product, state_file=state_file, port=port)
        assert second.client_key == before["client_key"]
        assert second.account_id == before["account_id"]
        assert second.kid == before["kid"]
        assert second.public_key_pem == before["pem"]
        restored = second.installation(APP_KEY)
        assert restored.shared_secret == before["secret"]
        assert restored.installation_id == before["installation_id"]
        assert restored.enabled is False
        assert second.properties() == {"colour": {"v": "blue"}}

        # The app's stored secret still works, and the app still trusts the same key.
        second.enable()
        url = prop_url(second, "colour")
        token = app_jwt(second, "GET", url, secret=before["secret"])
        assert call(second, "GET", "colour", token=token).json()["value"] == {"v": "blue"}
        assert app.last("enabled").error == ""
        second.reinstall()
        assert app.last("installed").error == ""
    finally:
        app.stop()


def test_state_file_is_private_and_written_through(
    connect_host_factory: EmulatorFactory, tmp_path: Path
) -> None:
    state_file = tmp_path / "nested" / "site.json"
    emu = connect_host_factory("jira", state_file=state_file)
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    emu.set_property("a", 1, key=APP_KEY)
    saved = json.loads(state_file.read_text())
    assert saved["properties"] == {APP_KEY: {"a": 1}}
    assert saved["product"] == "jira"
    assert list(tmp_path.joinpath("nested").iterdir()) == [state_file]  # no temp files left


def test_without_a_state_file_nothing_is_written(
    connect_host_factory: EmulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    emu = connect_host_factory("jira")
    emu.set_property("a", 1, key=APP_KEY)
    assert list(tmp_path.iterdir()) == []


def test_a_state_file_of_the_other_product_is_refused(
    connect_host_factory: EmulatorFactory, tmp_path: Path
) -> None:
    state_file = tmp_path / "site.json"
    connect_host_factory("jira", state_file=state_file).stop()
    with pytest.raises(StateFileError, match="holds a jira site"):
        Emulator("confluence", state_file=state_file)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "Cannot read the state file"),
        ("[]", "is not a connect_host state file"),
        ('{"version": 99, "product": "jira"}', "is not a connect_host state file"),
        ('{"version": 1, "product": "jira"}', "is damaged"),
        (
            '{"version": 1, "product": "jira", "clientKey": "c", "accountId": "a", "kid": "k", '
            '"privateKey": "-----BEGIN PRIVATE KEY-----\\nnope\\n-----END PRIVATE KEY-----\\n", '
            '"installations": {}}',
            "is damaged",
        ),
    ],
)
def test_damaged_state_files_are_reported(tmp_path: Path, content: str, message: str) -> None:
    state_file = tmp_path / "site.json"
    state_file.write_text(content)
    with pytest.raises(StateFileError, match=message):
        Emulator("jira", state_file=state_file)
