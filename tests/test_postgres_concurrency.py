"""Races that only a real PostgreSQL can show: concurrent reinstalls and concurrent writes."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client

from connect_settings import store
from connect_settings.models import AddonSetting, Tenant
from connect_settings.testing import DEFAULT_SECRET, install_payload, make_tenant, page_token, race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://... (CI does)")


def _hs_post(client: Client, path: str, client_key: str, secret: str) -> Any:
    token = page_token(client_key, secret, "POST", path)
    return client.post(
        path, data="{}", content_type="application/json", HTTP_AUTHORIZATION=f"JWT {token}"
    )


def test_concurrent_first_installs_make_one_tenant(connect_installer):
    secrets = [f"secret-{i}-" + "s" * 40 for i in range(8)]

    def install(i: int) -> int:
        payload = install_payload(sharedSecret=secrets[i])
        return connect_installer.post(Client(), "/installed", payload).status_code

    assert race(8, install) == [204] * 8
    assert Tenant.objects.filter(client_key="test-client-key").count() == 1
    final = Tenant.objects.get().shared_secret
    assert final in secrets
    url = "/configure?lic=none"
    for secret in secrets:
        token = page_token("test-client-key", secret, "GET", url)
        status = Client().get(f"{url}&jwt={token}").status_code
        assert status == (200 if secret == final else 401)
    # The next reinstall's secret wins over everything before it.
    latest = "latest-" + "z" * 40
    assert (
        connect_installer.post(
            Client(), "/installed", install_payload(sharedSecret=latest)
        ).status_code
        == 204
    )
    assert Tenant.objects.get().shared_secret == latest


def test_concurrent_store_sets_never_duplicate_rows():
    make_tenant()
    results = race(8, lambda i: store.set("shared", {"writer": i}, "test-client-key"))
    assert all(isinstance(r, dict) for r in results), results
    rows = list(AddonSetting.objects.filter(key="shared").values_list("value", flat=True))
    assert len(rows) == 1
    assert rows[0] in [{"writer": i} for i in range(8)]


def test_concurrent_disabled_and_uninstalled(connect_installer):
    for _ in range(10):
        assert connect_installer.post(Client(), "/installed", install_payload()).status_code == 204
        calls = [
            lambda: _hs_post(Client(), "/disabled", "test-client-key", DEFAULT_SECRET).status_code,
            lambda: connect_installer.post(Client(), "/uninstalled", install_payload()).status_code,
        ]
        assert race(2, lambda i, calls=calls: calls[i]()) == [204, 204]
        tenant = Tenant.objects.get()
        assert (tenant.installed, tenant.enabled) == (False, False)
