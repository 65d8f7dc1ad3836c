"""Hostile input against a live server (SQLite and PostgreSQL): the catalogue of attacks, each
with its expected status, no 5xx, no secret in any answer and no stored row changed; and
hypothesis fuzzing of the canonical request and of every POST endpoint's JSON body."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache

from connect_settings.testing import FORGE_APP_ID, KeyServer
from resilience.fuzz import fuzz_bodies, fuzz_canonical
from resilience.hostile import run_catalogue
from resilience.report import SuiteResult
from resilience.world import World, build_world, seed

FERNET_KEY = "cmVzaWxpZW5jZS1rZXktcmVzaWxpZW5jZS1rZXktMDE="


@pytest.fixture
def world(live_server: Any, settings: Any, transactional_db: Any) -> Iterator[World]:
    server = KeyServer().start()
    try:
        settings.CONNECT_SETTINGS = {
            **settings.CONNECT_SETTINGS,
            "BASE_URL": live_server.url,
            "INSTALL_KEY_SERVERS": [server.url],
            "HOST_ALLOWLIST": ["127.0.0.1", "localhost"],
            "SECRET_KEYS": [FERNET_KEY],
            "FORGE_APP_ID": FORGE_APP_ID,
            "FORGE_JWKS_URLS": [server.jwks_url],
            "FORGE_STAGING_JWKS_URLS": [server.jwks_url],
            "FORGE_API_HOSTS": ["api.atlassian.com", "127.0.0.1"],
        }
        cache.clear()
        world = build_world(live_server.url, server)
        seed(world)
        yield world
    finally:
        server.stop()


def test_hostile_catalogue(world: World) -> None:
    result = SuiteResult("hostile", short=True)
    run_catalogue(world, result)
    print(result.table())
    assert result.ok, result.table()
    assert result.checks[0].tried >= 60


@pytest.mark.django_db
def test_settings_endpoints_redact_secret_fields(client: Any, connect_forge: Any) -> None:
    """Regression: /api/settings and /forge/settings returned the configure form's secret
    fields in clear to any holder of a session token, context JWT or FIT (any user)."""
    from connect_settings.auth import mint_session_token
    from connect_settings.configuration import save_configuration
    from connect_settings.testing import forge_installation_id, make_tenant

    iid = forge_installation_id()
    tenant = make_tenant(installation_id=iid)
    save_configuration(tenant, {"team_name": "Ops", "api_token": "tok-very-secret-123"})
    session = mint_session_token(tenant, "557058:user")
    answers = [
        client.get("/api/settings", HTTP_AUTHORIZATION=f"JWT {session}"),
        client.get("/forge/settings", HTTP_AUTHORIZATION=f"Bearer {connect_forge.fit(iid)}"),
    ]
    for response in answers:
        assert response.status_code == 200, response.content
        values = response.json()["settings"]["appSettings"]
        assert values["team_name"] == "Ops"
        assert values["api_token"] == {"secret": True, "set": True}
        assert b"tok-very-secret-123" not in response.content


def test_fuzz_canonical_request() -> None:
    result = SuiteResult("fuzz", short=True)
    fuzz_canonical(result, examples=150)
    assert result.ok, result.table()


def test_fuzz_post_bodies_and_signed_queries(world: World) -> None:
    result = SuiteResult("fuzz", short=True)
    fuzz_bodies(world, result, examples=40)
    print(result.table())
    assert result.ok, result.table()
