"""Installation and the other lifecycle callbacks, checked by a fake app that verifies them.

The fake app fetches the emulator's public key over HTTP from its key server and verifies
the RS256 signed install (``kid``, ``aud``, ``iss``, qsh relative to its own base path), then
HS256 ``enabled``/``disabled`` with the secret it was given.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from connect_settings.host import DescriptorError, Emulator, InstallError
from connect_settings.jwt.tokens import read_unverified
from tests.host_support import APP_KEY, FakeApp

pytest_plugins = ["tests.host_fixtures"]

PAYLOAD_FIELDS = {
    "key",
    "clientKey",
    "sharedSecret",
    "baseUrl",
    "displayUrl",
    "displayUrlServicedeskHelpCenter",
    "productType",
    "description",
    "serverVersion",
    "pluginsVersion",
    "serviceEntitlementNumber",
    "entitlementId",
    "entitlementNumber",
    "oauthClientId",
    "eventType",
    "installationId",
}


def test_key_server_serves_the_public_key_by_kid(host_site: Emulator) -> None:
    response = requests.get(f"{host_site.key_server_url}/{host_site.kid}", timeout=10)
    assert response.status_code == 200
    assert response.content == host_site.public_key_pem
    assert response.content.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert requests.get(f"{host_site.key_server_url}/unknown", timeout=10).status_code == 404


def test_install_sends_a_verified_signed_installed_then_enabled(
    host_site: Emulator, host_app: FakeApp
) -> None:
    installation = host_site.install(host_app.base_url)

    assert host_app.events() == ["installed", "enabled"]
    installed = host_app.last("installed")
    assert installed.error == ""
    assert installed.header["alg"] == "RS256"
    assert installed.header["kid"] == host_site.kid
    assert installed.claims["iss"] == host_site.client_key
    assert installed.claims["aud"] == [host_app.base_url]
    assert installed.claims["exp"] - installed.claims["iat"] <= 900
    assert host_app.last("enabled").error == ""
    assert host_app.last("enabled").header["alg"] == "HS256"

    body = installed.body
    assert set(body) == PAYLOAD_FIELDS
    assert body["key"] == APP_KEY
    assert body["clientKey"] == host_site.client_key
    assert body["sharedSecret"] == installation.shared_secret
    assert len(body["sharedSecret"]) >= 32
    assert body["baseUrl"] == host_site.base_url
    assert body["productType"] == host_site.product.name
    assert body["eventType"] == "installed"
    assert body["installationId"].startswith("ari:cloud:ecosystem::installation/")
    if host_site.product.name == "confluence":
        assert body["baseUrl"].endswith("/wiki")
    assert host_app.last("enabled").body["eventType"] == "enabled"
    assert [e.event for e in host_site.events] == ["installed", "enabled"]
    assert all(e.ok for e in host_site.events)


def test_an_app_at_the_root_path_verifies_too(host_site: Emulator) -> None:
    app = FakeApp(key_server=host_site.key_server_url, base_path="").start()
    try:
        host_site.install(app.base_url + "/atlassian-connect.json")
        assert app.events() == ["installed", "enabled"]
        assert app.last("installed").error == ""
    finally:
        app.stop()


def test_reinstall_rotates_the_secret_and_keeps_client_key_and_installation_id(
    host_installed: Emulator, host_app: FakeApp
) -> None:
    first = host_installed.installation()
    first_secret = first.shared_secret
    second = host_installed.reinstall()
    assert second.shared_secret != first_secret
    assert second.installation_id == first.installation_id
    assert host_app.events() == ["installed", "enabled", "installed", "enabled"]
    assert host_app.last("installed").error == ""
    assert host_app.last("installed").body["clientKey"] == host_installed.client_key
    assert host_app.shared_secret == second.shared_secret
    # enabled after the reinstall is signed with the new secret, which the app verified.
    assert host_app.last("enabled").error == ""


def test_disable_and_enable_are_hs256_with_the_current_secret(
    host_installed: Emulator, host_app: FakeApp
) -> None:
    event = host_installed.disable()
    assert event is not None and event.ok
    assert host_app.last("disabled").error == ""
    assert host_app.last("disabled").body["eventType"] == "disabled"
    assert host_installed.installation().enabled is False
    assert host_installed.disable() is None  # already disabled: nothing sent
    assert host_installed.enable() is not None
    assert host_app.events()[-2:] == ["disabled", "enabled"]
    assert host_installed.installation().enabled is True


def test_reinstalling_a_disabled_app_keeps_it_disabled(
    host_installed: Emulator, host_app: FakeApp
) -> None:
    host_installed.disable()
    host_installed.reinstall()
    assert host_app.events()[-1] == "installed"
    assert host_installed.installation().enabled is False


def test_uninstall_sends_disabled_then_signed_uninstalled_and_keeps_properties(
    host_installed: Emulator, host_app: FakeApp
) -> None:
    host_installed.set_property("kept", {"a": 1})
    events = host_installed.uninstall()
    assert [e.event for e in events] == ["disabled", "uninstalled"]
    assert host_app.events()[-2:] == ["disabled", "uninstalled"]
    uninstalled = host_app.last("uninstalled")
    assert uninstalled.error == ""
    assert uninstalled.header["alg"] == "RS256"
    assert uninstalled.body["eventType"] == "uninstalled"
    assert host_installed.installations() == []
    # Properties outlive the Connect installation (the Forge version still reads them).
    assert host_installed.properties(APP_KEY) == {"kept": {"a": 1}}
    host_installed.install(host_app.base_url)
    assert host_installed.properties() == {"kept": {"a": 1}}


def test_a_non_2xx_installed_fails_the_installation_as_the_product_reports_it(
    host_site: Emulator, host_app: FakeApp
) -> None:
    host_app.answers["installed"] = (401, b'{"message": "Unknown key server"}')
    with pytest.raises(InstallError) as caught:
        host_site.install(host_app.base_url)
    message = caught.value.message
    assert message.startswith(
        "Installation failed. The app host returned HTTP response code 401 when we tried to "
        "contact it"
    )
    assert "Unknown key server" in message
    assert caught.value.status == 401
    assert host_site.installations() == []
    assert host_app.events() == ["installed"]  # no enabled after a failed install
    assert host_site.events[-1].ok is False


def test_a_failed_upgrade_leaves_the_installed_version_and_its_secret(
    host_installed: Emulator, host_app: FakeApp
) -> None:
    secret = host_installed.shared_secret()
    host_app.answers["installed"] = (500, b"boom")
    with pytest.raises(InstallError):
        host_installed.reinstall()
    assert host_installed.shared_secret() == secret


def test_an_app_that_echoes_the_secret_does_not_get_it_into_the_error(
    host_site: Emulator, host_app: FakeApp
) -> None:
    # Answer 400 with whatever the app received (the secret among it).
    original = host_app._post

    def echo(handler: Any) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        handler.send_response(400)
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

    host_app._post = echo  # type: ignore[method-assign]
    try:
        with pytest.raises(InstallError) as caught:
            host_site.install(host_app.base_url)
    finally:
        host_app._post = original  # type: ignore[method-assign]
    assert "sharedSecret" in caught.value.message
    secret = json.loads(caught.value.message.split("answered: ", 1)[1])["sharedSecret"]
    assert secret == "[shared secret redacted]"
    assert "[shared secret redacted]" in host_site.events[-1].detail


def test_an_app_that_does_not_answer_fails_with_the_products_words(host_site: Emulator) -> None:
    app = FakeApp(key_server=host_site.key_server_url).start()
    url = app.base_url
    descriptor = app.descriptor()
    app.stop()
    # Serve the descriptor from a second app whose lifecycle points at the stopped one.
    decoy = FakeApp(key_server=host_site.key_server_url).start()
    try:
        decoy.descriptor_overrides["baseUrl"] = url
        decoy.descriptor_overrides["lifecycle"] = descriptor["lifecycle"]
        with pytest.raises(InstallError) as caught:
            host_site.install(decoy.base_url)
    finally:
        decoy.stop()
    assert caught.value.message.startswith(
        "Installation failed. The app host did not respond when we tried to contact it at "
        f'"{url}/installed"'
    )


def test_the_control_api_reports_install_failures_as_502_with_the_message(
    host_site: Emulator, host_app: FakeApp
) -> None:
    host_app.answers["installed"] = (503, b"maintenance")
    response = requests.post(
        f"{host_site.url}/_emulator/apps", json={"url": host_app.base_url}, timeout=30
    )
    assert response.status_code == 502
    body = response.json()
    assert body["appStatus"] == 503
    assert "returned HTTP response code 503" in body["message"]
    assert "maintenance" in body["message"]


def test_the_control_api_installs_and_drives_the_lifecycle(
    host_site: Emulator, host_app: FakeApp
) -> None:
    api = f"{host_site.url}/_emulator"
    created = requests.post(f"{api}/apps", json={"url": host_app.base_url}, timeout=30)
    assert created.status_code == 201
    app = created.json()["app"]
    assert app["key"] == APP_KEY
    assert app["state"] == "ENABLED"
    assert [m["key"] for m in app["modules"]] == ["configure", "overview"]
    assert "sharedSecret" not in created.text
    assert host_site.shared_secret() not in created.text

    for action, state in (("disable", "DISABLED"), ("enable", "ENABLED")):
        response = requests.post(f"{api}/apps/{APP_KEY}/{action}", json={}, timeout=30)
        assert response.status_code == 200
        assert response.json()["app"]["state"] == state
    secret = host_site.shared_secret()
    assert requests.post(f"{api}/apps/{APP_KEY}/reinstall", json={}, timeout=30).ok
    assert host_site.shared_secret() != secret
    listed = requests.get(f"{api}/apps", timeout=10).json()["apps"]
    assert [a["key"] for a in listed] == [APP_KEY]
    removed = requests.post(f"{api}/apps/{APP_KEY}/uninstall", json={}, timeout=30)
    assert [e["event"] for e in removed.json()["events"]] == ["disabled", "uninstalled"]
    assert requests.get(f"{api}/apps/{APP_KEY}", timeout=10).status_code == 404
    events = requests.get(f"{api}/events", timeout=10).json()["events"]
    assert [e["event"] for e in events][:2] == ["installed", "enabled"]


def test_control_api_posts_must_be_json(host_site: Emulator, host_app: FakeApp) -> None:
    response = requests.post(
        f"{host_site.url}/_emulator/apps", data={"url": host_app.base_url}, timeout=10
    )
    assert response.status_code == 415
    assert host_app.events() == []


# Descriptor validation ---------------------------------------------------------------------


def _problems(emu: Emulator, app: FakeApp, **overrides: Any) -> list[str]:
    app.descriptor_overrides.update(overrides)
    with pytest.raises(DescriptorError) as caught:
        emu.install(app.base_url)
    assert app.events() == []  # nothing is sent for an invalid descriptor
    assert caught.value.message.startswith(f"The app descriptor at {app.base_url}")
    return caught.value.problems


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"key": None}, "key: required"),
        ({"key": "has spaces"}, "key: at most 64"),
        ({"key": "k" * 65}, "key: at most 64"),
        ({"baseUrl": None}, "baseUrl: required"),
        ({"baseUrl": "/relative"}, "baseUrl: '/relative' is not an absolute http(s) URL"),
        ({"baseUrl": "ftp://example.com"}, "is not an absolute http(s) URL"),
        ({"authentication": None}, "authentication: required"),
        ({"authentication": {"type": "none"}}, "authentication.type: 'none' is not emulated"),
        ({"lifecycle": None}, "lifecycle: required for JWT apps"),
        ({"lifecycle": {"enabled": "/enabled"}}, "lifecycle.installed: required"),
        ({"lifecycle": {"installed": "installed"}}, "lifecycle.installed: 'installed' must be"),
        ({"lifecycle": {"installed": "https://evil.example/x"}}, "must be relative"),
        ({"lifecycle": {"installed": "/i", "upgraded": "/u"}}, "lifecycle.upgraded: unknown"),
        ({"apiMigrations": {"gdpr": "yes"}}, "apiMigrations: must be an object of booleans"),
        ({"scopes": ["READ", "EVERYTHING"]}, "scopes: unknown ['EVERYTHING']"),
        ({"scopes": "READ"}, "scopes: must be a list"),
        ({"modules": []}, "modules: must be an object"),
        ({"modules": {"configurePage": {"key": "c", "url": "/c"}}}, "name.value: required"),
        (
            {"modules": {"configurePage": {"key": "c", "name": {"value": "C"}}}},
            "modules.configurePage.url: required",
        ),
        (
            {"modules": {"configurePage": {"key": "bad key", "url": "/c", "name": {"value": "C"}}}},
            "modules.configurePage.key: required, letters, digits and '-' only",
        ),
        (
            {"modules": {"generalPages": {"key": "g", "url": "/g", "name": {"value": "G"}}}},
            "modules.generalPages: must be a list",
        ),
        (
            {
                "modules": {
                    "configurePage": {"key": "same", "url": "/c", "name": {"value": "C"}},
                    "generalPages": [{"key": "same", "url": "/g", "name": {"value": "G"}}],
                }
            },
            "the module key 'same' is used more than once",
        ),
        ({"name": 42}, "name: must be a string"),
    ],
)
def test_invalid_descriptors_are_refused_with_readable_problems(
    host_site: Emulator, host_app: FakeApp, overrides: dict[str, Any], expected: str
) -> None:
    problems = _problems(host_site, host_app, **overrides)
    assert any(expected in p for p in problems), problems


def test_all_problems_are_reported_at_once(host_site: Emulator, host_app: FakeApp) -> None:
    problems = _problems(
        host_site, host_app, key=None, authentication=None, scopes=["NOPE"], baseUrl="x"
    )
    assert len(problems) == 4


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/missing.json", "the app answered HTTP 404"),
        ("/not-json.json", "it is not valid JSON"),
        ("/array.json", "it is not a JSON object"),
    ],
)
def test_unreadable_descriptors_are_reported(
    host_site: Emulator, host_app: FakeApp, path: str, expected: str
) -> None:
    serve = {
        "/not-json.json": b"<html>hello</html>",
        "/array.json": b"[1, 2]",
    }
    original = host_app._get

    def get(handler: Any) -> None:
        relative = host_app._relative(handler.path)
        if relative in serve:
            host_app._send(handler, 200, serve[relative])
        elif relative == "/missing.json":
            host_app._send(handler, 404, b"{}")
        else:
            original(handler)

    host_app._get = get  # type: ignore[method-assign]
    with pytest.raises(DescriptorError) as caught:
        host_site.install(host_app.base_url + path)
    assert "could not be read" in caught.value.message
    assert caught.value.problems == [expected]


def test_an_unreachable_app_is_reported(host_site: Emulator) -> None:
    app = FakeApp(key_server=host_site.key_server_url).start()
    url = app.base_url
    app.stop()
    with pytest.raises(DescriptorError) as caught:
        host_site.install(url)
    assert "is the app running?" in caught.value.message


def test_the_control_api_reports_descriptor_problems_as_400(
    host_site: Emulator, host_app: FakeApp
) -> None:
    host_app.descriptor_overrides["authentication"] = {"type": "none"}
    response = requests.post(
        f"{host_site.url}/_emulator/apps", json={"url": host_app.base_url}, timeout=30
    )
    assert response.status_code == 400
    body = response.json()
    assert body["problems"] == [
        "authentication.type: 'none' is not emulated; Connect apps with a back end use \"jwt\""
    ]
    assert "is not valid" in body["message"]


def test_tokens_the_emulator_sends_carry_no_secret(host_site: Emulator, host_app: FakeApp) -> None:
    host_site.install(host_app.base_url)
    secret = host_site.shared_secret()
    for received in host_app.received:
        header, claims = received.header, received.claims
        assert secret not in json.dumps(header) + json.dumps(claims)
    token = host_site.context_token()
    assert secret not in json.dumps(read_unverified(token))
