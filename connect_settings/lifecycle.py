"""What installed / uninstalled / enabled / disabled do to tenants.

Each transition locks the tenant row, so ``disabled`` and ``uninstalled`` arriving together
serialise; each is idempotent; each returns the signal to send once the answer is out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connections, router, transaction
from django.db.models.expressions import Col
from django.db.models.signals import post_save, pre_save
from django.db.models.sql import UpdateQuery
from django.dispatch import Signal
from django.utils import timezone

from . import mirror, signals
from .conf import connect_settings
from .models import Tenant
from .tenants import invalidate

logger = logging.getLogger("connect_settings.lifecycle")

#: Install payload field -> Tenant attribute (PROTOCOL.md section 3).
PAYLOAD_FIELDS: dict[str, str] = {
    "key": "addon_key",
    "baseUrl": "base_url",
    "displayUrl": "display_url",
    "displayUrlServicedeskHelpCenter": "display_url_servicedesk_help_center",
    "productType": "product_type",
    "description": "description",
    "serverVersion": "server_version",
    "pluginsVersion": "plugins_version",
    "serviceEntitlementNumber": "service_entitlement_number",
    "entitlementId": "entitlement_id",
    "entitlementNumber": "entitlement_number",
    "oauthClientId": "oauth_client_id",
    "installationId": "installation_id",
}


@dataclass
class Outcome:
    """The tenant after a transition and the signal (with arguments) to send afterwards."""

    tenant: Tenant | None
    signal: Signal | None = None
    extra: dict[str, Any] | None = None

    def sender(self) -> Callable[[], None] | None:
        """Sends the signal; a failing receiver is logged (type only) and does not stop
        the others."""
        if self.signal is None or self.tenant is None:
            return None
        signal, tenant, extra = self.signal, self.tenant, self.extra or {}

        def send() -> None:
            for receiver, result in signal.send_robust(sender=Tenant, tenant=tenant, **extra):
                if isinstance(result, Exception):
                    logger.error(
                        "Lifecycle signal receiver %r failed: %s",
                        receiver,
                        type(result).__name__,
                        exc_info=result,
                    )

        return send


#: The locked read of one tenant row per (database alias, vendor): the SQL the ORM compiled
#: for ``Tenant.objects.select_for_update().filter(client_key=...)``, and per column its
#: field name, expression and the converters the ORM would apply. Compiling that query cost
#: more than the rest of an install's Python; each lifecycle call now only executes it.
_lock_sql: dict[tuple[str, str], tuple[str, list[str], list[Col], list[list[Any]]]] = {}
_PLACEHOLDER = "client-key"  # compiled only, never executed


def _compiled_lock(alias: str) -> tuple[str, list[str], list[Col], list[list[Any]]]:
    connection = connections[alias]
    found = _lock_sql.get((alias, connection.vendor))
    if found is None:
        # order_by(): client_key is unique, and the model's ordering would sort by it.
        rows = Tenant.objects.select_for_update().filter(client_key=_PLACEHOLDER).order_by()
        compiler = rows.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()  # in the caller's transaction, as FOR UPDATE needs
        assert list(params) == [_PLACEHOLDER], params
        columns = [col for col, _, _ in compiler.select]
        names = [col.target.attname for col in columns]
        converters = [
            connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            for col in columns
        ]
        found = _lock_sql[(alias, connection.vendor)] = (sql, names, columns, converters)
    return found


def _locked(client_key: str) -> Tenant | None:
    """The tenant's row, locked until the transaction ends; None when there is none.

    The same row and instance as ``Tenant.objects.select_for_update().get(...)``: the ORM's
    SQL (see :func:`_compiled_lock`), values through its converters, ``Tenant.from_db``.
    """
    alias = router.db_for_write(Tenant)
    connection = connections[alias]
    sql, names, columns, converters = _compiled_lock(alias)
    with connection.cursor() as cursor:
        cursor.execute(sql, [client_key])
        row = cursor.fetchone()
    if row is None:
        return None
    values = []
    for value, column, convert in zip(row, columns, converters, strict=True):
        for converter in convert:
            value = converter(value, column, connection)
        values.append(value)
    return Tenant.from_db(alias, names, values)


#: The ORM's ``UPDATE`` of one tenant row per (database alias, vendor, fields, which are None):
#: its SQL and whether None values are parameters (Django 6) or literal NULLs (Django 5.2);
#: None when the compiled parameters matched neither (then ``save()`` does the write).
_update_sql: dict[tuple[str, str, tuple[str, ...], tuple[bool, ...]], tuple[str, bool] | None] = {}


def _write(tenant: Tenant, fields: list[str]) -> None:
    """``tenant.save(update_fields=fields)``, with the UPDATE compiled once per field list.

    Only when nothing listens to the model signals that ``save()`` sends: the same shortcut
    Django's deletion collector takes (``can_fast_delete``). Values go through each field's
    ``pre_save`` (``auto_now``) and ``get_db_prep_save``, as ``save()`` does.
    """
    if pre_save.has_listeners(Tenant) or post_save.has_listeners(Tenant):
        tenant.save(update_fields=fields)
        return
    alias = router.db_for_write(Tenant, instance=tenant)
    connection = connections[alias]
    columns = [Tenant._meta.get_field(name) for name in fields]
    values = [field.pre_save(tenant, False) for field in columns]
    prepared = [
        field.get_db_prep_save(value, connection)
        for field, value in zip(columns, values, strict=True)
    ]
    # Which values are None is part of the statement where the ORM writes a literal NULL.
    nulls = tuple(value is None for value in values)
    with_nulls = [*prepared, tenant.pk]
    without_nulls = [v for v, null in zip(prepared, nulls, strict=True) if not null] + [tenant.pk]
    cache_key = (alias, connection.vendor, tuple(fields), nulls)
    if cache_key not in _update_sql:
        query = UpdateQuery(Tenant)
        query.add_update_fields([(f, None, v) for f, v in zip(columns, values, strict=True)])
        query.add_filter("pk", tenant.pk)
        sql, compiled = query.get_compiler(using=alias).as_sql()
        if list(compiled) == with_nulls:
            _update_sql[cache_key] = (sql, True)
        elif list(compiled) == without_nulls:
            _update_sql[cache_key] = (sql, False)
        else:  # a Django whose UPDATE we cannot replay: let save() write, every time
            _update_sql[cache_key] = None
    found = _update_sql[cache_key]
    if found is None:
        tenant.save(update_fields=fields)
        return
    sql, nulls_are_params = found
    with connection.cursor() as cursor:
        cursor.execute(sql, with_nulls if nulls_are_params else without_nulls)
        if cursor.rowcount != 1:  # what save(update_fields=...) says (the row is locked)
            raise DatabaseError("Save with update_fields did not affect any rows.")


#: What an install may change besides the secret; a reinstall writes only those that differ
#: (the UPDATE compiles one assignment per field), with the three written every time.
_INSTALL_FIELDS = [
    *PAYLOAD_FIELDS.values(),
    "installed",
    "enabled",
    "installed_at",
    "uninstalled_at",
]
#: A new secret (Fernet ciphertexts differ even for the same secret), its time, ``auto_now``.
_ALWAYS_WRITTEN = ["shared_secret_encrypted", "secret_rotated_at", "updated_at"]


def install(payload: dict[str, Any]) -> Outcome:
    """Create or update the tenant from a verified install payload; the secret is replaced."""
    now = timezone.now()
    values = {attr: payload.get(name) or "" for name, attr in PAYLOAD_FIELDS.items()}
    with transaction.atomic():
        tenant = _locked(payload["clientKey"])
        created = tenant is None
        if tenant is None:
            tenant = Tenant(client_key=payload["clientKey"], installed_at=now)
        before = {attr: getattr(tenant, attr) for attr in _INSTALL_FIELDS}
        if not tenant.installed:
            tenant.installed_at = now
        for attr, value in values.items():
            setattr(tenant, attr, value)
        tenant.shared_secret = payload["sharedSecret"]
        tenant.secret_rotated_at = now
        tenant.installed = True
        tenant.enabled = True
        tenant.uninstalled_at = None
        if created:
            # A concurrent first install of the same clientKey makes this a unique-constraint
            # conflict; the caller retries once and then takes the update path above.
            tenant.save(force_insert=True)
        else:
            changed = [attr for attr in _INSTALL_FIELDS if getattr(tenant, attr) != before[attr]]
            _write(tenant, [*changed, *_ALWAYS_WRITTEN])
        invalidate(tenant.client_key)
        # A new secret, maybe a host that lost our properties: queue every mirrored property
        # again, in this transaction. Deliveries wait for `enabled` (or the install delay).
        mirror.remirror_tenant(tenant, delay=float(connect_settings.MIRROR_INSTALL_DELAY))
    return Outcome(tenant, signals.tenant_installed, {"created": created})


def uninstall(client_key: str) -> Outcome:
    with transaction.atomic():
        tenant = _locked(client_key)
        if tenant is None or not tenant.installed:
            return Outcome(tenant)
        tenant.installed = False
        tenant.enabled = False
        tenant.uninstalled_at = timezone.now()
        _write(tenant, ["installed", "enabled", "uninstalled_at", "updated_at"])
        invalidate(client_key)
    return Outcome(tenant, signals.tenant_uninstalled)


def set_enabled(client_key: str, enabled: bool) -> Outcome:
    """Enable or disable; disabling an uninstalled tenant is a no-op (the race is benign)."""
    signal = signals.tenant_enabled if enabled else signals.tenant_disabled
    with transaction.atomic():
        tenant = _locked(client_key)
        if tenant is None or not tenant.installed or tenant.enabled == enabled:
            return Outcome(tenant)
        tenant.enabled = enabled
        tenant.enabled_changed_at = timezone.now()
        _write(tenant, ["enabled", "enabled_changed_at", "updated_at"])
        invalidate(client_key)
    return Outcome(tenant, signal)
