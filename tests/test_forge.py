"""Forge Remote: FIT verification, installation mapping, the events endpoint (local JWKS)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from django.core.cache import cache

from connect_settings import store
from connect_settings.models import ForgeInstallation
from connect_settings.testing import (
    ForgeSigner,
    forge_installation_id,
    generate_rsa_key,
    make_tenant,
    public_pem,
)

pytestmark = pytest.mark.django_db

SITE = "https://example.atlassian.net"


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.clear()


@pytest.fixture
def linked(connect_forge: ForgeSigner) -> tuple[ForgeSigner, str, Any]:
    """A tenant whose Connect install payload carried its Forge installation id."""
    iid = forge_installation_id()
    tenant = make_tenant(installation_id=iid)
    store.set("appSettings", {"team_name": "Ops"}, tenant.client_key)
    return connect_forge, iid, tenant


def _get(client: Any, token: str | None, **headers: Any) -> Any:
    extra = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get("/forge/settings", **extra, **headers)


def test_valid_fit_reaches_the_same_tenant_and_settings(client, linked):
    signer, iid, tenant = linked
    response = _get(client, signer.fit(iid, principal="557058:u"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["settings"] == {"appSettings": {"team_name": "Ops"}}
    assert body["installationId"] == iid
    assert body["cloudId"] == "11111111-2222-3333-4444-555555555555"
    assert "X-acpt" not in response  # Forge callers get no Connect session token
    mapping = ForgeInstallation.objects.get()
    assert (mapping.tenant_id, mapping.source) == (tenant.pk, "connect-payload")


def _hs256_with_key_bytes(signer: ForgeSigner, iid: str) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": signer.kid}
    _, claims = __import__("connect_settings.jwt.tokens", fromlist=["x"]).read_unverified(
        signer.fit(iid)
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    secret = public_pem(signer.private_key)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda s, i: s.fit(i, overrides={"iss": "someone"}), "invalid_issuer"),
        (
            lambda s, i: s.fit(i, overrides={"aud": "ari:cloud:ecosystem::app/other"}),
            "invalid_audience",
        ),
        (lambda s, i: s.fit(i, now=time.time() - 120), "token_expired"),
        (lambda s, i: s.fit(i, overrides={"nbf": int(time.time()) + 300}), "token_not_yet_valid"),
        (lambda s, i: s.fit(i, drop=("jti",)), "missing_claim"),
        (lambda s, i: s.fit(i, drop=("exp",)), "missing_claim"),
        (lambda s, i: s.fit(i, overrides={"icLabel": "../../etc"}), "malformed_token"),
        (
            lambda s, i: s.fit(
                i, overrides={"app": {"id": "ari:cloud:ecosystem::app/x", "installationId": i}}
            ),
            "invalid_audience",
        ),
        (lambda s, i: s.fit(i, key=generate_rsa_key()), "bad_signature"),
        (lambda s, i: s.fit(i, kid="unknown-kid"), "unknown_kid"),
        (lambda s, i: s.fit(i, kid="bad kid with spaces"), "invalid_kid"),
        (_hs256_with_key_bytes, "wrong_algorithm"),
        (lambda s, i: "not.a.token", "malformed_token"),
        (lambda s, i: s.fit("ari:cloud:ecosystem::installation/../x"), "malformed_token"),
        (lambda s, i: s.fit(i, api_base_url="https://evil.example/ex/jira/1"), "malformed_token"),
    ],
    ids=[
        "wrong-iss",
        "wrong-aud",
        "expired",
        "nbf-future",
        "no-jti",
        "no-exp",
        "bad-icLabel",
        "app-id-mismatch",
        "foreign-key",
        "unknown-kid",
        "kid-shape",
        "hs256-key-confusion",
        "garbage",
        "bad-installation-id",
        "foreign-api-host",
    ],
)
def test_invalid_fits_are_401(client, linked, make, code):
    signer, iid, _ = linked
    response = _get(client, make(signer, iid))
    assert response.status_code == 401, response.content
    assert response.json()["error"] == code
    assert not ForgeInstallation.objects.exists()


def test_missing_bearer_is_401_and_forge_off_is_503(client, linked, settings):
    assert _get(client, None).json()["error"] == "missing_token"
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "FORGE_APP_ID": ""}
    signer, iid, _ = linked
    response = _get(client, signer.fit(iid))
    assert response.status_code == 503
    assert response.json()["error"] == "forge_not_configured"


def test_unknown_kid_refetches_once_then_cools_down(client, linked):
    from connect_settings import forge

    signer, iid, _ = linked
    assert _get(client, signer.fit(iid)).status_code == 200
    jwks = forge._jwks(staging=False)
    fetched = jwks.fetches
    for _ in range(20):
        assert _get(client, signer.fit(iid, kid="forged-kid")).status_code == 401
    assert jwks.fetches == fetched  # within the cooldown: no refetch storm
    # A key rotated in on the JWKS is picked up once the cooldown allows a refetch.
    signer.key_server.add_key("rotated-kid")
    jwks._fetched_at -= jwks.cooldown
    token = signer.fit(iid, kid="rotated-kid", key=signer.key_server.keys["rotated-kid"])
    assert _get(client, token).status_code == 200
    assert jwks.fetches == fetched + 1


def test_jwks_down_is_503(client, linked):
    from connect_settings import forge

    signer, iid, _ = linked
    signer.key_server.mode = "down"
    forge.reset()
    response = _get(client, signer.fit(iid))
    assert response.status_code == 503
    assert response.json()["error"] == "jwks_unavailable"


def test_unmapped_installation_is_404_never_another_tenant(client, linked):
    signer, _, _ = linked
    response = _get(client, signer.fit(forge_installation_id()))
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_installation"
    assert "Ops" not in response.content.decode()


def test_site_url_maps_when_unambiguous(client, connect_forge):
    tenant = make_tenant("site-tenant", base_url=SITE)
    iid = forge_installation_id()
    response = _get(client, connect_forge.fit(iid, site_url=SITE + "/"))
    assert response.status_code == 200
    assert ForgeInstallation.objects.get().source == "site-url"
    assert ForgeInstallation.objects.get().tenant_id == tenant.pk
    # Two tenants on one site (a site import): ambiguous, so no guess.
    make_tenant("other", base_url="https://shared.atlassian.net")
    make_tenant("other2", base_url="https://shared.atlassian.net")
    response = _get(
        client, connect_forge.fit(forge_installation_id(), site_url="https://shared.atlassian.net")
    )
    assert response.status_code == 404


def test_several_installation_ids_for_one_tenant(client, linked):
    signer, iid, tenant = linked
    assert _get(client, signer.fit(iid)).status_code == 200
    # A reinstall on Forge: a new installation id, found again through the site URL.
    new_iid = forge_installation_id()
    assert _get(client, signer.fit(new_iid, site_url=SITE)).status_code == 200
    assert set(ForgeInstallation.objects.values_list("installation_id", flat=True)) == {
        iid,
        new_iid,
    }
    assert set(ForgeInstallation.objects.values_list("tenant_id", flat=True)) == {tenant.pk}


def test_system_token_is_cached_encrypted_and_never_echoed(client, linked, caplog):
    signer, iid, _ = linked
    system = "sys." + "x" * 40 + ".tok"
    response = _get(client, signer.fit(iid), HTTP_X_FORGE_OAUTH_SYSTEM=system)
    assert response.status_code == 200
    mapping = ForgeInstallation.objects.get()
    assert system not in mapping.system_token_encrypted
    assert mapping.system_token == system
    assert system not in caplog.text and system not in repr(mapping)


def _event(client: Any, token: str, body: dict[str, Any], **headers: Any) -> Any:
    return client.post(
        "/forge/events",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        **headers,
    )


@pytest.mark.parametrize("wrapped", [False, True])
def test_installed_event_maps_and_dedupes(client, connect_forge, wrapped):
    from connect_settings import signals

    tenant = make_tenant("evt-tenant", base_url=SITE)
    iid = forge_installation_id()
    event = {
        "eventType": "avi:forge:installed:app",
        "id": iid.rsplit("/", 1)[1],
        "context": "ari:cloud:jira::site/11111111-2222-3333-4444-555555555555",
        "installerAccountId": "557058:x",
        "app": {"id": connect_forge.app_id},
    }
    body = {"payload": event, "retryContext": {"retryCount": 1}} if wrapped else event
    seen: list[Any] = []
    signals.forge_event.connect(lambda **kw: seen.append(kw), weak=False)
    try:
        token = connect_forge.fit(iid, site_url=SITE)
        assert _event(client, token, body).status_code == 204
        assert _event(client, token, body).status_code == 204  # same jti: ignored
        # A retry (new FIT, same event id) after the work is done: nothing more happens.
        assert _event(client, connect_forge.fit(iid, site_url=SITE), body).status_code == 204
    finally:
        signals.forge_event.receivers.clear()
    assert ForgeInstallation.objects.get().tenant_id == tenant.pk
    assert [kw["event_type"] for kw in seen] == ["avi:forge:installed:app"]


def test_event_refusals(client, connect_forge):
    iid = forge_installation_id()
    token = connect_forge.fit(iid)
    assert client.get("/forge/events").status_code == 405
    response = client.post("/forge/events", data="{}", content_type="application/json")
    assert response.status_code == 401
    response = _event(client, connect_forge.fit(iid, overrides={"iss": "x"}), {})
    assert response.status_code == 401
    response = client.post(
        "/forge/events",
        data="[1]",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 400
    # Unknown event types are acknowledged (2xx: no pointless retries) and ignored.
    assert _event(client, connect_forge.fit(iid), {"eventType": "avi:other"}).status_code == 204
    assert not ForgeInstallation.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"FORGE_APP_ID": "not-an-ari"}, "E020"),
        ({"FORGE_JWKS_URLS": []}, "E021"),
        ({"FORGE_JWKS_URLS": ["http://jwks.example.com/jwks.json"]}, "E021"),
        ({"FORGE_API_HOSTS": ["*"]}, "E022"),
    ],
)
def test_forge_config_checks(settings, overrides, code):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.DEBUG = False
    settings.CONNECT_SETTINGS = {
        "APP_KEY": "com.example.app",
        "BASE_URL": "https://app.example.com",
        "SECRET_KEYS": ["k1-0123456789abcdef0123456789abcdef"],
        "FORGE_APP_ID": "ari:cloud:ecosystem::app/00000000-1111-2222-3333-444444444444",
        **overrides,
    }
    with pytest.raises(SystemCheckError, match=code):
        call_command("check", "--tag", "connect_settings", stdout=StringIO(), stderr=StringIO())
