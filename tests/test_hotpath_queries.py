"""Statements per request on the two write hot paths, so they cannot silently regrow:
the configure save (``POST /configure``) and the signed reinstall (``POST /installed``)."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.db.models.sql import compiler
from django.test.utils import CaptureQueriesContext

from connect_settings import store
from connect_settings.auth import mint_session_token
from connect_settings.configuration import save_configuration
from connect_settings.models import (
    AddonSetting,
    Configuration,
    ConfigurationChange,
    MirrorEntry,
    Tenant,
)
from connect_settings.signals import setting_changed
from connect_settings.testing import Installer, install_payload

pytestmark = pytest.mark.django_db


def _sql(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries]


def _save(client: Any, tenant: Tenant, values: dict[str, Any]) -> Any:
    return client.post(
        "/configure",
        data=json.dumps({"values": values}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"JWT {mint_session_token(tenant, 'admin')}",
    )


def test_a_save_is_two_statements_on_postgresql_and_five_elsewhere(client, connect_tenant):
    """On PostgreSQL a save reads both rows in one statement and checks and writes them in
    another (two round trips, see configuration._save_unlocked); elsewhere it locks, reads
    and writes in five statements."""
    assert _save(client, connect_tenant, {"team_name": "Ops"}).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = _save(client, connect_tenant, {"team_name": "Platform"})
    assert response.status_code == 200
    assert response.json()["version"] == 2
    sql = _sql(queries)
    # Inside the test's transaction: SAVEPOINT / RELEASE stand for BEGIN / COMMIT.
    work = [q for q in sql if "SAVEPOINT" not in q]
    if not connection.features.has_select_for_update:
        # SQLite: a no-op UPDATE first takes the database write lock (see configuration._lock).
        first = work.pop(0)
        assert first.startswith('UPDATE "connect_settings_configuration"'), sql
    postgres = connection.vendor == "postgresql"
    assert len(work) == (2 if postgres else 5), sql
    if postgres:
        read, swap = work
        assert read.startswith("SELECT") and "FOR UPDATE" not in read, sql
        assert '"connect_settings_configuration" c JOIN "connect_settings_addonsetting" s' in (
            read
        ), sql
        # The three writes through the rows the check locked (see _swap_statement).
        assert swap.startswith("WITH cur AS (SELECT"), sql
        assert 'FOR UPDATE), w0 AS (UPDATE "connect_settings_addonsetting"' in swap, sql
        assert 'w1 AS (UPDATE "connect_settings_configuration"' in swap, sql
        assert 'w2 AS (INSERT INTO "connect_settings_configurationchange"' in swap, sql
        assert swap.endswith(") SELECT held FROM cur"), sql
    else:
        locked, read, *writes = work
        assert locked.startswith("SELECT") and "connect_settings_configuration" in locked
        assert read.startswith("SELECT") and "connect_settings_addonsetting" in read
        assert [w.split()[0] for w in writes] == ["UPDATE", "UPDATE", "INSERT"], writes
        if connection.features.has_select_for_update:
            assert locked.endswith("FOR UPDATE") and read.endswith("FOR UPDATE"), sql
    # Nothing mirrored: no outbox read or write; the tenant row is neither read nor locked.
    assert not any("mirrorentry" in q or "connect_settings_tenant" in q for q in sql), sql
    assert len(sql) <= 8, sql
    assert store.get("appSettings", connect_tenant)["team_name"] == "Platform"
    assert ConfigurationChange.objects.get(version=2).changes == {
        "team_name": {"from": "Ops", "to": "Platform"}
    }
    assert Configuration.objects.get(tenant=connect_tenant).version == 2


def test_a_failing_write_leaves_nothing_written(client, connect_tenant):
    """The writes are all or nothing: a history row that cannot be inserted (its version is
    taken) leaves the values and the version as they were, and the save answers 500 rather
    than claiming a version it did not store."""
    assert _save(client, connect_tenant, {"team_name": "Ops"}).status_code == 200
    ConfigurationChange.objects.create(tenant=connect_tenant, version=2, changes={})
    client.raise_request_exception = False
    response = _save(client, connect_tenant, {"team_name": "Platform"})
    assert response.status_code == 500
    assert store.get("appSettings", connect_tenant)["team_name"] == "Ops"
    assert Configuration.objects.get(tenant=connect_tenant).version == 1


def test_a_save_that_changes_nothing_writes_nothing(connect_tenant):
    save_configuration(connect_tenant, {"team_name": "Ops"})
    with CaptureQueriesContext(connection) as queries:
        result = save_configuration(connect_tenant, {"team_name": "Ops"})
    assert result.changed == [] and result.version == 1
    lock = 'SET "version" = "connect_settings_configuration"."version"'  # SQLite's, a no-op
    writes = [q for q in _sql(queries) if q.split()[0] in ("UPDATE", "INSERT", "DELETE")]
    assert [q for q in writes if lock not in q] == []


def test_a_save_compiles_no_sql_once_warm(connect_tenant):
    # The save's statements are compiled by the ORM once per database, then only executed.
    save_configuration(connect_tenant, {"team_name": "Ops"})
    save_configuration(connect_tenant, {"team_name": "Platform"})
    compiled: list[str] = []

    def counting(cls: type[compiler.SQLCompiler]) -> Any:
        original = cls.as_sql

        def as_sql(self: compiler.SQLCompiler, *args: Any, **kwargs: Any) -> Any:
            compiled.append(cls.__name__)
            return original(self, *args, **kwargs)

        return mock.patch.object(cls, "as_sql", as_sql)

    kinds = (compiler.SQLCompiler, compiler.SQLUpdateCompiler, compiler.SQLInsertCompiler)
    with counting(kinds[0]), counting(kinds[1]), counting(kinds[2]):
        result = save_configuration(connect_tenant, {"team_name": "Night shift"})
        unchanged = save_configuration(connect_tenant, {"team_name": "Night shift"})
    assert compiled == []
    assert result.version == 3 and result.changed == ["team_name"]
    # Read back through the same converters as the ORM's: an aware datetime, as stored.
    config = Configuration.objects.get(tenant=connect_tenant)
    assert unchanged.updated_at == result.updated_at == config.updated_at
    assert unchanged.updated_at is not None and unchanged.updated_at.tzinfo is not None
    assert (config.version, config.updated_by) == (3, "")
    row = AddonSetting.objects.get(tenant=connect_tenant, key="appSettings")
    assert row.value["team_name"] == "Night shift" and row.updated_at == result.updated_at
    change = ConfigurationChange.objects.get(tenant=connect_tenant, version=3)
    assert (change.changed_at, change.source) == (result.updated_at, "page")
    assert change.changes == {"team_name": {"from": "Platform", "to": "Night shift"}}


def test_the_first_save_creates_the_rows(connect_tenant):
    result = save_configuration(connect_tenant, {"team_name": "Ops"})
    assert result.version == 1
    assert Configuration.objects.get(tenant=connect_tenant).version == 1
    assert store.get("appSettings", connect_tenant)["team_name"] == "Ops"


def test_an_update_records_the_outbox_and_signals_after_commit(
    connect_tenant, settings, django_capture_on_commit_callbacks
):
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "MIRROR": [{"property": "team", "setting": "appSettings", "field": "team_name"}],
        "MIRROR_TASK_BACKEND": "database",  # queued, not sent: no host here
    }
    save_configuration(connect_tenant, {"team_name": "Ops"})  # creates the row
    seen: list[tuple[str, str]] = []

    def receiver(**kw: Any) -> None:
        seen.append((kw["old_value"]["team_name"], kw["new_value"]["team_name"]))

    setting_changed.connect(receiver, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = save_configuration(connect_tenant, {"team_name": "Platform"})
            assert seen == []  # not before the commit
    finally:
        setting_changed.disconnect(receiver)
    assert seen == [("Ops", "Platform")]
    entry = MirrorEntry.objects.get(tenant=connect_tenant, property_key="team")
    assert (entry.value, entry.version, entry.status) == ("Platform", 2, "pending")
    assert result.mirror["team"]["version"] == 2


def test_a_reinstall_is_one_locked_read_and_one_write(client, connect_installer: Installer):
    assert connect_installer.post(client, "/installed", install_payload()).status_code == 204
    with CaptureQueriesContext(connection) as queries:
        response = connect_installer.post(client, "/installed", install_payload())
    assert response.status_code == 204
    sql = _sql(queries)
    work = [q for q in sql if "SAVEPOINT" not in q]
    assert len(work) == 2, sql
    assert work[0].startswith("SELECT") and work[1].startswith("UPDATE"), sql
    assert len(sql) <= 4, sql
