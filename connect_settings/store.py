"""Per-tenant settings with ACE's verbs: ``get``, ``set``, ``delete``, ``all`` (+ async twins).

Values are JSON documents (no pickle). A read is one indexed query: on the settings table
when the tenant is at hand (the caller's ``request.connect.tenant``, or this process's copy),
else joined to the tenant table by client key. Writes find the tenant through the shared
tenant cache.
Writes to mirrored settings also write the mirror outbox, in the same transaction.
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import sync_to_async
from django.db import IntegrityError, connections, router, transaction

from . import mirror
from .exceptions import ConnectError, SettingValueError
from .json_values import same_json
from .models import AddonSetting, Tenant
from .signals import setting_changed
from .tenants import get_tenant, held_tenant, is_client_key

__all__ = ["UnknownTenant", "aall", "adelete", "aget", "all", "aset", "delete", "get", "set"]

MAX_KEY_LENGTH = 255


class UnknownTenant(ConnectError, LookupError):
    code = "unknown_tenant"
    status = 404


TenantRef = str | Tenant


def _lookup(client_key: TenantRef) -> Tenant | None:
    # A Tenant the caller already holds (request.connect.tenant) saves a cache round trip.
    return client_key if isinstance(client_key, Tenant) else get_tenant(client_key)


def _tenant(client_key: TenantRef) -> Tenant:
    tenant = _lookup(client_key)
    if tenant is None:
        raise UnknownTenant("No tenant has that client key.")
    return tenant


def check_key(key: str) -> None:
    """SettingValueError unless ``key`` is a string of 1 to 255 characters."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise SettingValueError(
            f"A setting key must be a string of 1 to {MAX_KEY_LENGTH} characters."
        )


def check_value(value: Any) -> None:
    """SettingValueError unless ``value`` is a JSON document (no NaN, no objects)."""
    try:
        # allow_nan=False: NaN and Infinity are not JSON and PostgreSQL's jsonb refuses them.
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise SettingValueError(f"The value is not JSON-serialisable: {err}") from err


def notify_changed(tenant: Tenant, key: str, old: Any, new: Any, deleted: bool) -> None:
    transaction.on_commit(
        lambda: setting_changed.send(
            sender=AddonSetting,
            tenant=tenant,
            key=key,
            old_value=old,
            new_value=new,
            deleted=deleted,
        )
    )


def _locked_row(tenant: Tenant, key: str) -> AddonSetting | None:
    # order_by(): the default ordering (tenant, key) joins the tenant table, and FOR UPDATE
    # would then lock the tenant's row too, queueing lifecycle changes behind every save.
    rows = AddonSetting.objects.select_for_update().filter(tenant_id=tenant.pk, key=key)
    return rows.order_by().first()


# The read path runs on every authenticated page and AJAX call. Building and compiling a
# QuerySet costs more than the indexed query itself, so the ORM compiles each read once per
# database and each call only executes the SQL (values decoded by the JSONField, as the ORM
# would). The ORM writes the SQL: table and column names, quoting and placeholders stay its.
_compiled: dict[tuple[str, str, str], tuple[str, tuple[str, ...]]] = {}

# Placeholder values the compiled SQL is built with, and the argument each one stands for.
_SENTINELS: dict[Any, str] = {-1: "tenant_id", "\x00client_key": "client_key", "\x00key": "key"}


def _read_query(kind: str) -> Any:
    # order_by(): (tenant, key) is unique, and sorting by the relation would join the
    # tenant table. By client key, the filter joins it instead of a lookup before the read.
    match kind:
        case "get":
            rows = AddonSetting.objects.filter(tenant_id=-1, key="\x00key").order_by()
        case "get_by_client_key":
            rows = AddonSetting.objects.filter(tenant__client_key="\x00client_key", key="\x00key")
            rows = rows.order_by()
        case "all":
            rows = AddonSetting.objects.filter(tenant_id=-1).order_by("key")
        case _:  # "all_by_client_key"
            rows = AddonSetting.objects.filter(tenant__client_key="\x00client_key")
            rows = rows.order_by("key")
    if kind.startswith("get"):
        return rows.values_list("value")[:1].query
    return rows.values_list("key", "value").query


def _read_sql(alias: str, kind: str) -> tuple[str, tuple[str, ...]]:
    """(SQL, the argument name of each of its parameters) for ``kind`` on database ``alias``."""
    cache_key = (alias, connections[alias].vendor, kind)
    found = _compiled.get(cache_key)
    if found is None:
        sql, params = _read_query(kind).get_compiler(using=alias).as_sql()
        found = (sql, tuple(_SENTINELS[p] for p in params))
        _compiled[cache_key] = found
    return found


_VALUE_FIELD = AddonSetting._meta.get_field("value")


def _read(kind: str, ref: TenantRef, key: str = "") -> list[tuple[Any, ...]]:
    """The rows of ``kind``, their last column (the value) decoded by the JSONField.

    With a tenant held (the caller's, or this process's copy), the read is one query on the
    settings table. Otherwise it joins the tenant table by client key: one query, where
    looking the tenant up first would add a cache (or database) round trip before it.
    """
    tenant = ref if isinstance(ref, Tenant) else held_tenant(ref)
    if tenant is not None:
        args: dict[str, Any] = {"tenant_id": tenant.pk, "key": key}
    elif is_client_key(ref):
        kind += "_by_client_key"
        args = {"client_key": ref, "key": key}
    else:
        return []
    alias = router.db_for_read(AddonSetting)
    sql, names = _read_sql(alias, kind)
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(sql, [args[name] for name in names])
        rows = cursor.fetchall()
    decode = _VALUE_FIELD.from_db_value
    return [(*row[:-1], decode(row[-1], None, connection)) for row in rows]


def get(key: str, client_key: TenantRef, default: Any = None) -> Any:
    """The stored value, or ``default`` when the key (or the tenant) has none."""
    if not isinstance(key, str):
        return default
    for (value,) in _read("get", client_key, key):
        return value
    return default


def set(key: str, value: Any, client_key: TenantRef) -> Any:
    """Store ``value`` under ``key`` (atomic upsert); returns the value."""
    check_key(key)
    check_value(value)
    tenant = _tenant(client_key)
    with transaction.atomic():
        row = _locked_row(tenant, key)
        if row is None:
            try:
                with transaction.atomic():
                    AddonSetting.objects.create(tenant_id=tenant.pk, key=key, value=value)
                mirror.record(tenant, key, value)
                notify_changed(tenant, key, None, value, deleted=False)
                return value
            except IntegrityError:
                # Another writer inserted the key first: lock its row and update it.
                row = AddonSetting.objects.select_for_update().get(tenant_id=tenant.pk, key=key)
        old = row.value
        if not same_json(old, value):
            row.value = value
            row.save(update_fields=["value", "updated_at"])
            mirror.record(tenant, key, value)
            notify_changed(tenant, key, old, value, deleted=False)
    return value


def delete(key: str, client_key: TenantRef) -> bool:
    """Remove ``key``; True when something was deleted."""
    tenant = _lookup(client_key)
    if tenant is None:
        return False
    with transaction.atomic():
        row = _locked_row(tenant, key)
        if row is None:
            return False
        old = row.value
        row.delete()
        mirror.record(tenant, key, mirror.MISSING)
        notify_changed(tenant, key, old, None, deleted=True)
    return True


def all(client_key: TenantRef) -> dict[str, Any]:
    """Every setting of the tenant as ``{key: value}``."""
    return dict(_read("all", client_key))


aget = sync_to_async(get)
aset = sync_to_async(set)
adelete = sync_to_async(delete)
aall = sync_to_async(all)
