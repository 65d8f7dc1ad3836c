"""What a (re)install reads and writes: the locked read is the ORM's row, the UPDATE names
only what changed (plus the new secret), and nothing an install should change is left stale."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models.signals import post_save
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from connect_settings import lifecycle
from connect_settings.models import Tenant
from connect_settings.testing import DEFAULT_SECRET, install_payload

pytestmark = pytest.mark.django_db

CLIENT_KEY = "test-client-key"
NEW_SECRET = "rotated-secret-abcdefghijklmnopqrstuvwxyz-0123456789"


def _row(tenant: Tenant) -> dict[str, Any]:
    return {f.attname: getattr(tenant, f.attname) for f in Tenant._meta.concrete_fields}


def _updates(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]


def _column(attname: str) -> str:
    return connection.ops.quote_name(Tenant._meta.get_field(attname).column)


def test_the_locked_read_is_the_orm_row():
    lifecycle.install(install_payload())
    Tenant.objects.filter(client_key=CLIENT_KEY).update(
        enabled=False, enabled_changed_at=timezone.now(), description="é ☃"
    )
    with transaction.atomic():
        ours = lifecycle._locked(CLIENT_KEY)
        orm = Tenant.objects.select_for_update().get(client_key=CLIENT_KEY)
    assert ours is not None
    assert _row(ours) == _row(orm)
    assert ours.enabled is False and ours.installed is True
    assert ours.enabled_changed_at is not None and ours.enabled_changed_at.tzinfo is not None
    assert (ours._state.adding, ours._state.db) == (False, orm._state.db)
    assert ours.shared_secret == DEFAULT_SECRET
    with transaction.atomic():
        assert lifecycle._locked("no-such-client") is None


def test_the_locked_read_locks_the_row():
    lifecycle.install(install_payload())
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        lifecycle._locked(CLIENT_KEY)
    (select,) = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert "ORDER BY" not in select
    assert select.endswith("FOR UPDATE") == connection.features.has_select_for_update


def test_a_same_payload_reinstall_writes_only_the_secret():
    lifecycle.install(install_payload())
    before = Tenant.objects.get(client_key=CLIENT_KEY)
    with CaptureQueriesContext(connection) as queries:
        outcome = lifecycle.install(install_payload(sharedSecret=NEW_SECRET))
    (update,) = _updates(queries)
    assignments = update.split(" SET ", 1)[1].split(" WHERE ", 1)[0]
    written = {name for name in _row(before) if f"{_column(name)} =" in assignments}
    assert written == {"shared_secret_encrypted", "secret_rotated_at", "updated_at"}
    after = Tenant.objects.get(client_key=CLIENT_KEY)
    assert after.shared_secret == NEW_SECRET
    assert after.secret_rotated_at > before.secret_rotated_at
    assert after.updated_at > before.updated_at
    assert outcome.extra == {"created": False}
    unchanged = {"shared_secret_encrypted", "secret_rotated_at", "updated_at"}
    assert {k: v for k, v in _row(after).items() if k not in unchanged} == {
        k: v for k, v in _row(before).items() if k not in unchanged
    }


def test_a_reinstall_writes_every_changed_field_and_clears_dropped_ones():
    lifecycle.install(install_payload())
    changed = install_payload(
        baseUrl="https://moved.atlassian.net", pluginsVersion="1002.0.0", sharedSecret=NEW_SECRET
    )
    del changed["description"], changed["oauthClientId"]  # no longer sent: stored as ""
    with CaptureQueriesContext(connection) as queries:
        lifecycle.install(changed)
    (update,) = _updates(queries)
    for name in ("base_url", "plugins_version", "description", "oauth_client_id"):
        assert f"{_column(name)} =" in update, name
    assert f"{_column('server_version')} =" not in update
    tenant = Tenant.objects.get(client_key=CLIENT_KEY)
    assert tenant.base_url == "https://moved.atlassian.net"
    assert tenant.plugins_version == "1002.0.0"
    assert tenant.description == "" and tenant.oauth_client_id == ""
    assert tenant.server_version == "100000"
    assert tenant.shared_secret == NEW_SECRET


def test_a_reinstall_overwrites_a_row_changed_since_the_last_install():
    lifecycle.install(install_payload())
    # Edited elsewhere (the admin, an import): the locked read sees it, the install restores.
    Tenant.objects.filter(client_key=CLIENT_KEY).update(
        description="edited", product_type="confluence", enabled=False
    )
    lifecycle.install(install_payload())
    tenant = Tenant.objects.get(client_key=CLIENT_KEY)
    assert tenant.description == install_payload()["description"]
    assert (tenant.product_type, tenant.enabled) == ("jira", True)


def test_a_reinstall_after_uninstall_restarts_the_installation():
    lifecycle.install(install_payload())
    first_installed_at = Tenant.objects.get(client_key=CLIENT_KEY).installed_at
    lifecycle.uninstall(CLIENT_KEY)
    Tenant.objects.filter(client_key=CLIENT_KEY).update(
        installed_at=first_installed_at - timedelta(days=3)
    )
    lifecycle.install(install_payload())
    tenant = Tenant.objects.get(client_key=CLIENT_KEY)
    assert (tenant.installed, tenant.enabled, tenant.uninstalled_at) == (True, True, None)
    assert tenant.installed_at > first_installed_at
    # A reinstall of an installed tenant keeps its installation time.
    lifecycle.install(install_payload())
    assert Tenant.objects.get(client_key=CLIENT_KEY).installed_at == tenant.installed_at


def test_model_signal_receivers_still_see_a_save():
    lifecycle.install(install_payload())
    seen: list[tuple[bool, frozenset[str] | None]] = []

    def receiver(instance: Tenant, created: bool, update_fields: Any, **kw: Any) -> None:
        seen.append((created, update_fields))

    post_save.connect(receiver, sender=Tenant, weak=False)
    try:
        lifecycle.install(install_payload(sharedSecret=NEW_SECRET))
        lifecycle.uninstall(CLIENT_KEY)
    finally:
        post_save.disconnect(receiver, sender=Tenant)
    assert seen == [
        (False, frozenset({"shared_secret_encrypted", "secret_rotated_at", "updated_at"})),
        (False, frozenset({"installed", "enabled", "uninstalled_at", "updated_at"})),
    ]
    assert Tenant.objects.get(client_key=CLIENT_KEY).shared_secret == NEW_SECRET


def test_a_write_to_a_vanished_row_fails_as_save_would():
    lifecycle.install(install_payload())
    tenant = Tenant.objects.get(client_key=CLIENT_KEY)
    Tenant.objects.filter(pk=tenant.pk).delete()
    tenant.enabled = False
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        lifecycle._write(tenant, ["enabled", "updated_at"])


def test_disable_enable_and_uninstall_write_through_the_compiled_update():
    lifecycle.install(install_payload())
    lifecycle.set_enabled(CLIENT_KEY, False)
    tenant = Tenant.objects.get(client_key=CLIENT_KEY)
    assert (tenant.enabled, tenant.installed) == (False, True)
    assert tenant.enabled_changed_at is not None
    lifecycle.set_enabled(CLIENT_KEY, True)
    lifecycle.uninstall(CLIENT_KEY)
    tenant = Tenant.objects.get(client_key=CLIENT_KEY)
    assert (tenant.enabled, tenant.installed) == (False, False)
    assert tenant.uninstalled_at is not None and tenant.updated_at >= tenant.uninstalled_at
