"""Session tokens seen before (auth's memo of verified tokens) skip only the signature: every
other check runs again, and a changed secret, app key or tenant state refuses them as before."""

from __future__ import annotations

import types
from typing import Any

import pytest

from connect_settings import auth
from connect_settings.auth import mint_session_token
from connect_settings.conf import connect_settings
from connect_settings.jwt import hs256
from connect_settings.tenants import invalidate
from connect_settings.testing import DEFAULT_SECRET, page_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def signatures(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The signing inputs whose HMAC was checked (hs256.verify spied on, not replaced)."""
    checked: list[str] = []
    verify = hs256.verify

    def spy(parsed: hs256.ParsedToken, secret: str, **kwargs: Any) -> dict[str, Any]:
        checked.append(parsed.signing_input)
        return verify(parsed, secret, **kwargs)

    monkeypatch.setattr(hs256, "verify", spy)
    return checked


def _get(client: Any, token: str) -> Any:
    return client.get("/api/settings", HTTP_AUTHORIZATION=f"JWT {token}")


def test_a_repeated_session_token_skips_only_the_hmac(client, connect_tenant, signatures):
    token = mint_session_token(connect_tenant, "557058:u1", {"jira": {"issue": {"id": "1"}}})
    first = _get(client, token)
    assert first.status_code == 200 and len(signatures) == 1
    again = _get(client, token)
    assert again.status_code == 200 and len(signatures) == 1  # no second HMAC
    assert again.json() == first.json()
    # The answer's fresh token is minted from the same claims (same user, same context).
    assert hs256.parse(again["X-acpt"]).claims["sub"] == "557058:u1"
    assert hs256.parse(again["X-acpt"]).claims["context"] == {"jira": {"issue": {"id": "1"}}}


def test_page_tokens_are_not_kept(client, connect_tenant, signatures):
    url = "/api/settings"
    token = page_token("test-client-key", DEFAULT_SECRET, "GET", url)
    assert client.get(f"{url}?jwt={token}").status_code == 200
    assert client.get(f"{url}?jwt={token}").status_code == 200
    assert len(signatures) == 2
    assert token not in auth._verified


def test_a_reinstall_with_a_new_secret_refuses_a_kept_token(client, connect_tenant):
    token = mint_session_token(connect_tenant, "u1")
    assert _get(client, token).status_code == 200
    assert token in auth._verified
    connect_tenant.shared_secret = "a-rotated-secret-" + "x" * 30
    connect_tenant.save()
    invalidate("test-client-key")
    response = _get(client, token)
    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"


def test_an_uninstall_refuses_a_kept_token(client, connect_tenant):
    token = mint_session_token(connect_tenant, "u1")
    assert _get(client, token).status_code == 200
    assert token in auth._verified
    connect_tenant.installed = False
    connect_tenant.save()
    invalidate("test-client-key")
    assert _get(client, token).json()["error"] == "uninstalled_tenant"


def test_a_kept_token_still_expires(client, connect_tenant, monkeypatch):
    token = mint_session_token(connect_tenant, "u1")
    assert _get(client, token).status_code == 200
    assert token in auth._verified
    exp = hs256.parse(token).claims["exp"]
    # The claim checks read the clock through hs256's own `time`: move only theirs.
    late = exp + connect_settings.JWT_LEEWAY + 1
    monkeypatch.setattr(hs256, "time", types.SimpleNamespace(time=lambda: late))
    assert _get(client, token).json()["error"] == "token_expired"


def test_another_app_key_refuses_a_kept_token(client, connect_tenant, settings):
    token = mint_session_token(connect_tenant, "u1")
    assert _get(client, token).status_code == 200
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "APP_KEY": "com.example.other"}
    # No longer our session token: a host token without a qsh, refused as without the memo.
    response = _get(client, token)
    assert response.status_code == 401 and response.json()["error"] == "missing_claim"
    assert token not in auth._verified


def test_each_request_gets_its_own_copy_of_the_claims(rf, connect_tenant):
    token = mint_session_token(connect_tenant, "u1", {"jira": {"issue": {"id": "1"}}})
    request = rf.get("/api/settings", HTTP_AUTHORIZATION=f"JWT {token}")
    first = auth.authenticate_request(request)  # verified in full, then kept
    first.claims["context"]["jira"]["issue"]["id"] = "changed by a view"
    for _ in range(2):  # each repeat too: the kept claims are copied for every request
        again = auth.authenticate_request(request)
        assert again.claims["context"] == {"jira": {"issue": {"id": "1"}}}
        again.claims["context"]["jira"]["issue"]["id"] = "changed by a view"


def test_the_memo_is_bounded(rf, connect_tenant, monkeypatch):
    monkeypatch.setattr(auth, "_VERIFIED_SIZE", 3)
    monkeypatch.setattr(auth, "_verified", {})
    monkeypatch.setattr(hs256, "time", types.SimpleNamespace(time=lambda: 1_800_000_100))
    for second in range(10):
        token = mint_session_token(connect_tenant, "u1", now=1_800_000_000 + second)
        auth.authenticate_request(rf.get("/x", HTTP_AUTHORIZATION=f"JWT {token}"))
        assert len(auth._verified) <= 3
    assert token in auth._verified
