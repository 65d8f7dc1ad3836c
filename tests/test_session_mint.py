"""Session tokens: one mint per user and second (auth.mint_session_token's memo) gives the
very token a fresh mint gives, and never one made of other inputs."""

from __future__ import annotations

from typing import Any

import pytest

from connect_settings.auth import mint_session_token
from connect_settings.jwt import hs256, tokens
from connect_settings.testing import DEFAULT_SECRET

pytestmark = pytest.mark.django_db
NOW = 1_800_000_000.25


def _fresh(tenant: Any, sub: str | None, context: dict[str, Any], now: float, secret: str) -> str:
    claims: dict[str, Any] = {
        "iss": "com.example.connect-settings-demo",
        "aud": [tenant.client_key],
    }
    claims["context"] = context
    if sub:
        claims["sub"] = sub
    return tokens.mint_hs256(claims, secret, ttl=900, now=now)


@pytest.fixture
def app(settings: Any) -> None:
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "APP_KEY": "com.example.connect-settings-demo",
        "SESSION_TOKEN_TTL": 900,
    }


def test_a_repeated_mint_is_the_token_a_fresh_mint_gives(app: None, connect_tenant: Any) -> None:
    first = mint_session_token(connect_tenant, "u1", {"jira": {"issue": {"key": "A-1"}}}, now=NOW)
    again = mint_session_token(
        connect_tenant, "u1", {"jira": {"issue": {"key": "A-1"}}}, now=NOW + 0.5
    )
    fresh = _fresh(connect_tenant, "u1", {"jira": {"issue": {"key": "A-1"}}}, NOW, DEFAULT_SECRET)
    assert first == again == fresh


@pytest.mark.parametrize(
    ("sub", "context", "later"),
    [
        ("u2", {}, 0),  # another user
        (None, {}, 0),  # no user
        ("u1", {"jira": {"issue": {"key": "A-2"}}}, 0),  # another context
        ("u1", {}, 1),  # the next second
    ],
)
def test_other_inputs_give_their_own_token(
    app: None, connect_tenant: Any, sub: str | None, context: dict[str, Any], later: int
) -> None:
    mint_session_token(connect_tenant, "u1", {}, now=NOW)
    token = mint_session_token(connect_tenant, sub, context, now=NOW + later)
    assert token == _fresh(connect_tenant, sub, context, NOW + later, DEFAULT_SECRET)
    claims = hs256.verify(hs256.parse(token), DEFAULT_SECRET, leeway=10**10)
    assert claims.get("sub") == sub and claims["context"] == context


def test_a_new_secret_in_the_same_second_signs_with_the_new_secret(
    app: None, connect_tenant: Any
) -> None:
    before = mint_session_token(connect_tenant, "u1", {}, now=NOW)
    connect_tenant.shared_secret = "a-rotated-secret-" + "x" * 30
    after = mint_session_token(connect_tenant, "u1", {}, now=NOW)
    assert after != before
    assert after == _fresh(connect_tenant, "u1", {}, NOW, connect_tenant.shared_secret)
