"""/installed, /uninstalled, /enabled, /disabled: signed verification, idempotence, failures."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt as pyjwt
import pytest

from connect_settings import signals
from connect_settings.models import Tenant
from connect_settings.testing import (
    DEFAULT_SECRET,
    Installer,
    generate_rsa_key,
    install_payload,
    page_token,
)

pytestmark = pytest.mark.django_db

NEW_SECRET = "rotated-secret-abcdefghijklmnopqrstuvwxyz-0123456789"


def _hs_post(client: Any, path: str, client_key: str, secret: str, **kw: Any) -> Any:
    token = page_token(client_key, secret, "POST", path)
    return client.post(
        path,
        data=json.dumps({"clientKey": client_key, "eventType": path.strip("/")}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"JWT {token}",
        **kw,
    )


def _table() -> list[tuple[Any, ...]]:
    return list(Tenant.objects.order_by("pk").values_list())


def test_signed_install_creates_tenant_with_every_field(client, connect_installer: Installer):
    payload = install_payload()
    received: list[dict[str, Any]] = []
    signals.tenant_installed.connect(lambda **kw: received.append(kw), weak=False)
    try:
        response = connect_installer.post(client, "/installed", payload)
    finally:
        signals.tenant_installed.receivers.clear()
    assert response.status_code == 204, response.content
    tenant = Tenant.objects.get(client_key="test-client-key")
    assert tenant.shared_secret == DEFAULT_SECRET
    assert DEFAULT_SECRET not in tenant.shared_secret_encrypted
    assert tenant.base_url == "https://example.atlassian.net"
    assert tenant.product_type == "jira"
    assert tenant.installation_id == payload["installationId"]
    assert tenant.service_entitlement_number == "SEN-1"
    assert tenant.entitlement_id == "ent-1"
    assert tenant.entitlement_number == "E-1"
    assert tenant.oauth_client_id == "oauth-1"
    assert tenant.installed and tenant.enabled
    assert [kw["created"] for kw in received] == [True]
    assert DEFAULT_SECRET not in str(tenant) and DEFAULT_SECRET not in repr(tenant)


def test_reinstall_rotates_secret_and_old_tokens_fail(client, connect_installer: Installer):
    assert connect_installer.post(client, "/installed", install_payload()).status_code == 204
    old_url = "/configure?lic=none"
    old_token = page_token("test-client-key", DEFAULT_SECRET, "GET", old_url)
    assert client.get(f"{old_url}&jwt={old_token}").status_code == 200

    payload = install_payload(sharedSecret=NEW_SECRET)
    assert connect_installer.post(client, "/installed", payload).status_code == 204
    assert Tenant.objects.count() == 1
    response = client.get(f"{old_url}&jwt={old_token}")
    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"
    new_token = page_token("test-client-key", NEW_SECRET, "GET", old_url)
    assert client.get(f"{old_url}&jwt={new_token}").status_code == 200


def test_confluence_base_url_with_wiki_path(client, connect_installer: Installer):
    payload = install_payload(
        "conf-key", baseUrl="https://example.atlassian.net/wiki/", productType="confluence"
    )
    assert connect_installer.post(client, "/installed", payload).status_code == 204
    tenant = Tenant.objects.get(client_key="conf-key")
    assert tenant.base_url == "https://example.atlassian.net/wiki"
    assert tenant.base_path == "/wiki"


def _assert_refused(response: Any, status: int, code: str, before: list[Any]) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert DEFAULT_SECRET not in response.content.decode()
    assert _table() == before
    if status == 401:
        assert response["WWW-Authenticate"].startswith("JWT")


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda i: None, "missing_token"),
        (lambda i: "not-a-jwt", "malformed_token"),
        (lambda i: i.token("test-client-key", iss="someone-else"), "issuer_mismatch"),
        (lambda i: i.token("test-client-key", aud=["https://evil.example"]), "invalid_audience"),
        (lambda i: i.token("test-client-key", qsh="0" * 64), "qsh_mismatch"),
        (lambda i: i.token("test-client-key", path="/uninstalled"), "qsh_mismatch"),
        (lambda i: i.token("test-client-key", ttl=-100), "token_expired"),
        (lambda i: i.token("test-client-key", now=time.time() + 600), "token_not_yet_valid"),
        (lambda i: i.token("test-client-key", kid="../../etc/passwd"), "invalid_kid"),
        (lambda i: i.token("test-client-key", kid="a/../b"), "invalid_kid"),
        (lambda i: i.token("test-client-key", kid="unknown-kid"), "unknown_kid"),
        (lambda i: i.token("test-client-key", key=generate_rsa_key()), "bad_signature"),
    ],
    ids=[
        "unsigned",
        "garbage",
        "iss-not-body-clientKey",
        "aud-not-base-url",
        "qsh-mismatch",
        "qsh-for-other-endpoint",
        "expired",
        "iat-in-future",
        "kid-path-traversal",
        "kid-dotdot-segment",
        "kid-unknown",
        "signature-from-other-key",
    ],
)
def test_install_refusals_store_nothing(client, connect_installer: Installer, make_token, code):
    before = _table()
    token = make_token(connect_installer)
    headers = {"HTTP_AUTHORIZATION": f"JWT {token}"} if token else {}
    response = client.post(
        "/installed", data=json.dumps(install_payload()), content_type="application/json", **headers
    )
    _assert_refused(response, 401, code, before)


def test_hs256_install_is_refused(client, connect_installer: Installer):
    token = page_token("test-client-key", DEFAULT_SECRET, "POST", "/installed")
    response = connect_installer.post(client, "/installed", install_payload(), token=token)
    _assert_refused(response, 401, "wrong_algorithm", [])


def test_alg_none_install_is_refused(client, connect_installer: Installer):
    token = pyjwt.encode(
        {"iss": "test-client-key", "exp": int(time.time()) + 60}, None, algorithm="none"
    )
    response = connect_installer.post(client, "/installed", install_payload(), token=token)
    _assert_refused(response, 401, "wrong_algorithm", [])


def test_context_token_on_lifecycle_is_refused(client, connect_tenant):
    token = page_token("test-client-key", DEFAULT_SECRET, "POST", "/disabled", qsh="context-qsh")
    before = _table()
    response = client.post(
        "/disabled", data="{}", content_type="application/json", HTTP_AUTHORIZATION=f"JWT {token}"
    )
    _assert_refused(response, 401, "context_token_not_allowed", before)


def test_session_token_on_lifecycle_is_refused(client, connect_tenant):
    from connect_settings.auth import mint_session_token

    token = mint_session_token(connect_tenant, "someone")
    before = _table()
    response = client.post(
        "/enabled", data="{}", content_type="application/json", HTTP_AUTHORIZATION=f"JWT {token}"
    )
    _assert_refused(response, 401, "context_token_not_allowed", before)


def test_install_with_host_outside_allowlist_is_forbidden(client, connect_installer: Installer):
    payload = install_payload(baseUrl="https://evil.example.com")
    response = connect_installer.post(client, "/installed", payload)
    _assert_refused(response, 403, "host_not_allowed", [])


def test_plain_http_tenant_base_url_is_forbidden(client, connect_installer: Installer):
    payload = install_payload(baseUrl="http://example.atlassian.net")
    response = connect_installer.post(client, "/installed", payload)
    _assert_refused(response, 403, "host_not_allowed", [])


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "malformed_body"),
        (b"[1, 2]", "malformed_body"),
        (b"\xff\xfe\x00", "malformed_body"),
        (b"[" * 5000 + b"]" * 5000, "malformed_body"),
        (
            json.dumps({"baseUrl": "https://x.atlassian.net", "sharedSecret": "s"}).encode(),
            "missing_field",
        ),
        (json.dumps(install_payload(sharedSecret="")).encode(), "missing_field"),
        (json.dumps(install_payload(clientKey=["a"])).encode(), "missing_field"),
        (json.dumps(install_payload(productType=5)).encode(), "invalid_field"),
        (json.dumps(install_payload(baseUrl="javascript:alert(1)")).encode(), "invalid_field"),
        (json.dumps(install_payload(clientKey="k" * 300)).encode(), "invalid_field"),
        (json.dumps(install_payload(key="another.app")).encode(), "wrong_app_key"),
        (json.dumps(install_payload(description="x" * 70_000)).encode(), "body_too_large"),
    ],
    ids=[
        "not-json",
        "array",
        "invalid-utf8",
        "deep-nesting",
        "no-clientKey",
        "empty-secret",
        "clientKey-list",
        "productType-number",
        "baseUrl-javascript",
        "clientKey-too-long",
        "other-app-key",
        "too-large",
    ],
)
def test_malformed_install_bodies_are_400(client, connect_installer: Installer, body, code):
    token = connect_installer.token("test-client-key")
    response = client.post(
        "/installed", data=body, content_type="application/json", HTTP_AUTHORIZATION=f"JWT {token}"
    )
    _assert_refused(response, 400, code, [])


def test_wrong_content_type_is_415(client, connect_installer: Installer):
    token = connect_installer.token("test-client-key")
    response = client.post(
        "/installed",
        data=json.dumps(install_payload()),
        content_type="text/plain",
        HTTP_AUTHORIZATION=f"JWT {token}",
    )
    _assert_refused(response, 415, "unsupported_media_type", [])


def test_get_on_lifecycle_is_405_json(client):
    response = client.get("/installed")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_key_server_down_is_503_and_retry_succeeds(client, connect_installer: Installer):
    connect_installer.key_server.mode = "down"
    response = connect_installer.post(client, "/installed", install_payload())
    _assert_refused(response, 503, "install_key_unavailable", [])
    assert response["Retry-After"]
    connect_installer.key_server.mode = "ok"
    assert connect_installer.post(client, "/installed", install_payload()).status_code == 204


def test_key_server_garbage_is_401(client, connect_installer: Installer):
    connect_installer.key_server.mode = "garbage"
    response = connect_installer.post(client, "/installed", install_payload())
    _assert_refused(response, 401, "unknown_kid", [])


def test_key_server_slow_times_out_as_503(client, connect_installer: Installer, settings):
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "INSTALL_KEY_TIMEOUT": 0.3}
    connect_installer.key_server.mode = "slow"
    response = connect_installer.post(client, "/installed", install_payload())
    _assert_refused(response, 503, "install_key_unavailable", [])


def test_cached_key_survives_key_server_outage(client, connect_installer: Installer):
    assert connect_installer.post(client, "/installed", install_payload()).status_code == 204
    connect_installer.key_server.mode = "down"
    payload = install_payload(sharedSecret=NEW_SECRET)
    assert connect_installer.post(client, "/installed", payload).status_code == 204
    assert Tenant.objects.get().shared_secret == NEW_SECRET


def test_aud_with_trailing_slash_and_alternative_base_url(client, connect_installer, settings):
    base = settings.CONNECT_SETTINGS["BASE_URL"]
    token = connect_installer.token("test-client-key", aud=[base + "/"])
    assert (
        connect_installer.post(client, "/installed", install_payload(), token=token).status_code
        == 204
    )
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "ALLOWED_BASE_URLS": ["https://old.example.com/"],
    }
    token = connect_installer.token("test-client-key", aud="https://old.example.com")
    assert (
        connect_installer.post(client, "/installed", install_payload(), token=token).status_code
        == 204
    )


def test_uninstall_keeps_data_and_refuses_tokens(client, connect_installer: Installer):
    from connect_settings import store

    assert connect_installer.post(client, "/installed", install_payload()).status_code == 204
    store.set("colour", "blue", "test-client-key")
    response = connect_installer.post(
        client, "/uninstalled", install_payload(eventType="uninstalled")
    )
    assert response.status_code == 204
    tenant = Tenant.objects.get()
    assert not tenant.installed and not tenant.enabled and tenant.uninstalled_at
    assert store.get("colour", "test-client-key") == "blue"
    url = "/configure?lic=none"
    response = client.get(f"{url}&jwt={page_token('test-client-key', DEFAULT_SECRET, 'GET', url)}")
    assert response.status_code == 401
    assert response.json()["error"] == "uninstalled_tenant"
    # Idempotent: a second uninstall is accepted and changes nothing.
    before = _table()
    assert connect_installer.post(client, "/uninstalled", install_payload()).status_code == 204
    assert _table() == before
    # Reinstall brings the tenant back with its data.
    assert (
        connect_installer.post(
            client, "/installed", install_payload(sharedSecret=NEW_SECRET)
        ).status_code
        == 204
    )
    assert Tenant.objects.get().installed
    assert store.get("colour", "test-client-key") == "blue"


def test_uninstall_is_signed_too(client, connect_installer: Installer):
    assert connect_installer.post(client, "/installed", install_payload()).status_code == 204
    token = page_token("test-client-key", DEFAULT_SECRET, "POST", "/uninstalled")
    before = _table()
    response = connect_installer.post(client, "/uninstalled", install_payload(), token=token)
    _assert_refused(response, 401, "wrong_algorithm", before)


def test_uninstall_of_unknown_tenant_is_204_and_creates_nothing(client, connect_installer):
    response = connect_installer.post(client, "/uninstalled", install_payload("nobody"))
    assert response.status_code == 204
    assert not Tenant.objects.exists()


def test_disable_enable_cycle_and_signals(client, connect_tenant):
    seen: list[str] = []
    signals.tenant_disabled.connect(lambda **kw: seen.append("disabled"), weak=False)
    signals.tenant_enabled.connect(lambda **kw: seen.append("enabled"), weak=False)
    try:
        assert _hs_post(client, "/disabled", "test-client-key", DEFAULT_SECRET).status_code == 204
        assert not Tenant.objects.get().enabled
        assert _hs_post(client, "/disabled", "test-client-key", DEFAULT_SECRET).status_code == 204
        assert _hs_post(client, "/enabled", "test-client-key", DEFAULT_SECRET).status_code == 204
        assert Tenant.objects.get().enabled
    finally:
        signals.tenant_disabled.receivers.clear()
        signals.tenant_enabled.receivers.clear()
    assert seen == ["disabled", "enabled"]


def test_disabled_configure_page_is_refused(client, connect_tenant):
    assert _hs_post(client, "/disabled", "test-client-key", DEFAULT_SECRET).status_code == 204
    url = "/configure?lic=none"
    response = client.get(f"{url}&jwt={page_token('test-client-key', DEFAULT_SECRET, 'GET', url)}")
    assert response.status_code == 403
    assert response.json()["error"] == "tenant_disabled"


def test_enabled_with_wrong_secret_or_qsh_is_refused(client, connect_tenant):
    before = _table()
    response = _hs_post(client, "/enabled", "test-client-key", "wrong-secret-" * 4)
    _assert_refused(response, 401, "bad_signature", before)
    token = page_token("test-client-key", DEFAULT_SECRET, "POST", "/disabled")
    response = client.post(
        "/enabled", data="{}", content_type="application/json", HTTP_AUTHORIZATION=f"JWT {token}"
    )
    _assert_refused(response, 401, "qsh_mismatch", before)


def test_enabled_body_clientkey_must_match_token(client, connect_tenant):
    from connect_settings.testing import make_tenant

    make_tenant("other-key", "other-secret-0123456789-0123456789-abcdef")
    before = _table()
    token = page_token("test-client-key", DEFAULT_SECRET, "POST", "/disabled")
    response = client.post(
        "/disabled",
        data=json.dumps({"clientKey": "other-key"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"JWT {token}",
    )
    _assert_refused(response, 401, "issuer_mismatch", before)


@pytest.mark.parametrize("first", ["disabled", "uninstalled"])
def test_disabled_and_uninstalled_in_either_order(client, connect_installer, first):
    assert connect_installer.post(client, "/installed", install_payload()).status_code == 204
    calls = {
        "disabled": lambda: _hs_post(client, "/disabled", "test-client-key", DEFAULT_SECRET),
        "uninstalled": lambda: connect_installer.post(client, "/uninstalled", install_payload()),
    }
    second = "uninstalled" if first == "disabled" else "disabled"
    assert calls[first]().status_code == 204
    assert calls[second]().status_code == 204
    tenant = Tenant.objects.get()
    assert (tenant.installed, tenant.enabled) == (False, False)


def test_signal_receiver_failure_does_not_fail_install(client, connect_installer, caplog):
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.tenant_installed.connect(broken, weak=False)
    try:
        response = connect_installer.post(client, "/installed", install_payload())
    finally:
        signals.tenant_installed.disconnect(broken)
    assert response.status_code == 204
    assert Tenant.objects.filter(installed=True).count() == 1
    assert "receiver" in caplog.text
    assert DEFAULT_SECRET not in caplog.text


def test_key_cached_by_one_worker_serves_another_while_key_servers_are_down(
    client, connect_installer: Installer
):
    from connect_settings import install_keys

    assert connect_installer.post(client, "/installed", install_payload()).status_code == 204
    connect_installer.key_server.mode = "down"
    install_keys.reset()  # a second worker: its own process cache is empty
    requests_before = connect_installer.key_server.requests
    payload = install_payload(sharedSecret=NEW_SECRET)
    assert connect_installer.post(client, "/installed", payload).status_code == 204
    assert connect_installer.key_server.requests == requests_before  # served by the shared cache
    assert Tenant.objects.get().shared_secret == NEW_SECRET
