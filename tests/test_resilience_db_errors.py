"""A database outage is a clean 503 JSON answer, never a 500, and a failed save writes nothing.

The outage is simulated in-process with ``connection.execute_wrapper`` (every query, or the
queries on one table, raise Django's ``OperationalError`` as the driver's would be wrapped);
the real thing (PostgreSQL restarted under load, behind gunicorn) is in
``test_resilience_faults.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, connection
from django.test import Client

from connect_settings.auth import mint_session_token
from connect_settings.db_errors import DatabaseUnavailableMiddleware
from connect_settings.models import AddonSetting, Configuration, ConfigurationChange, MirrorEntry
from connect_settings.testing import DEFAULT_SECRET, make_tenant, page_token, signed_url

pytestmark = pytest.mark.django_db

PAGE = "/configure?lic=none"


@contextmanager
def database_down(
    only: str | None = None, error: type[Exception] = OperationalError
) -> Iterator[list[str]]:
    """Every query (or every query mentioning ``only``) fails as if the server were gone."""
    failed: list[str] = []

    def wrapper(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        if only is None or only in sql:
            failed.append(sql)
            raise error("server closed the connection unexpectedly")
        return execute(sql, *args)

    with connection.execute_wrapper(wrapper):
        yield failed


def _assert_503(response: Any) -> None:
    assert response.status_code == 503, response.content[:500]
    assert response.json()["error"] == "database_unavailable"
    assert response["Retry-After"].isdigit()
    assert b"Traceback" not in response.content and b"server closed" not in response.content


@pytest.fixture
def client() -> Client:
    # Django's test client re-raises any exception sent through got_request_exception; here
    # the answer the client would see is what is under test.
    return Client(raise_request_exception=False)


def test_page_load_with_cold_tenant_cache_is_503_then_recovers(client: Client) -> None:
    tenant = make_tenant()
    cache.clear()  # the tenant lookup in ConnectMiddleware must reach the database
    url = signed_url(tenant.client_key, DEFAULT_SECRET, PAGE)
    with database_down() as failed:
        _assert_503(client.get(url))
    assert failed, "the request never reached the database"
    assert client.get(url).status_code == 200  # the next request reconnects by itself


def test_page_load_with_warm_tenant_cache_is_503(client: Client) -> None:
    tenant = make_tenant()
    url = signed_url(tenant.client_key, DEFAULT_SECRET, PAGE)
    assert client.get(url).status_code == 200  # tenant now cached: auth needs no query
    with database_down():
        _assert_503(client.get(url))


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
@pytest.mark.parametrize("table", ["connect_settings_configurationchange", "connect_settings_"])
def test_failed_save_is_503_and_writes_nothing(
    client: Client, settings: Any, error: type[Exception], table: str
) -> None:
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "MIRROR": [{"property": "escalation-notify", "setting": "appSettings", "field": "notify"}],
        "MIRROR_TASK_BACKEND": "database",  # queued, not sent: no host here
    }
    tenant = make_tenant()
    token = mint_session_token(tenant, "557058:admin")

    def save(values: dict[str, Any]) -> Any:
        return client.post(
            "/configure",
            data=json.dumps({"values": values, "version": None}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"JWT {token}",
        )

    assert save({"team_name": "Before", "notify": True}).status_code == 200
    before = (
        list(AddonSetting.objects.values_list("key", "value")),
        list(Configuration.objects.values_list("version", flat=True)),
        ConfigurationChange.objects.count(),
        list(MirrorEntry.objects.values_list("property_key", "version", "value")),
    )
    # The last write of the save (the history row) fails: the setting, the version and the
    # mirror outbox written before it in the same transaction must be rolled back.
    with database_down(only=table, error=error):
        _assert_503(save({"team_name": "During", "notify": False}))
    after = (
        list(AddonSetting.objects.values_list("key", "value")),
        list(Configuration.objects.values_list("version", flat=True)),
        ConfigurationChange.objects.count(),
        list(MirrorEntry.objects.values_list("property_key", "version", "value")),
    )
    assert after == before
    response = save({"team_name": "After"})
    assert response.status_code == 200 and response.json()["version"] == 2


def test_lifecycle_event_is_503(client: Client) -> None:
    tenant = make_tenant()
    token = page_token(tenant.client_key, DEFAULT_SECRET, "POST", "/disabled")
    cache.clear()
    with database_down():
        response = client.post(
            "/disabled",
            data=json.dumps({"clientKey": tenant.client_key}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"JWT {token}",
        )
    _assert_503(response)
    tenant.refresh_from_db()
    assert tenant.enabled


def test_admin_login_is_503(client: Client, django_user_model: Any) -> None:
    django_user_model.objects.create_superuser("root", "root@example.com", "pw-0123456789")
    with database_down():
        _assert_503(client.post("/admin/login/", {"username": "root", "password": "x"}))


def test_other_errors_are_left_alone(rf: Any) -> None:
    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    request = rf.get("/")
    assert middleware.process_exception(request, ValueError("x")) is None
    assert middleware.process_exception(request, OperationalError("x")).status_code == 503
