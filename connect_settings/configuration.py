"""A tenant's configuration: read it, save it (versioned, row-locked, with history).

The values are one JSON object stored through :mod:`connect_settings.store` under
``CONFIGURE_SETTING_KEY``; the version lives in :class:`~connect_settings.models.Configuration`,
whose row every save locks. Both the configure page (``views/configure.py``) and the Django
admin save through :func:`save_configuration`, so they share validation and history.

Submissions (``values``) follow JSON semantics:

- a field left out keeps its current value (the form's ``initial`` if never saved);
- a secret field takes a string to replace it, ``null`` or ``""`` to clear it, and keeps its
  value when left out or sent back as the redacted marker ``{"secret": true, ...}``;
- a name the form does not declare is an error (typos must not vanish silently).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django import forms
from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models import F, Field, Model
from django.db.models.signals import post_delete, post_save
from django.db.models.sql import InsertQuery, UpdateQuery
from django.dispatch import receiver
from django.utils import timezone

from . import mirror, store, tenants
from .conf import connect_settings
from .exceptions import ConnectError
from .forms import (
    LineListField,
    build_form,
    configure_form_class,
    effective_values,
    is_redacted,
    redact,
    redacted_secret,
    secret_field_names,
    to_json,
)
from .models import AddonSetting, Configuration, ConfigurationChange, Tenant

__all__ = [
    "ConfigurationConflict",
    "ConfigurationInvalid",
    "SaveResult",
    "current_state",
    "mirror_changes",
    "recent_changes",
    "save_configuration",
    "stored_values",
    "values_for",
]

logger = logging.getLogger(__name__)


class ConfigurationInvalid(ConnectError):
    """400: the values do not pass the form's validation; ``errors`` is ``{field: [msg]}``."""

    code = "invalid_configuration"
    status = 400

    def __init__(self, errors: dict[str, list[str]], form: forms.BaseForm | None = None) -> None:
        super().__init__("Some values are not valid.")
        self.errors = errors
        #: The bound form (for the admin to redisplay; its secret widgets never render values).
        self.form = form


class ConfigurationConflict(ConnectError):
    """409: the submitted version is not the current one; nothing was stored."""

    code = "conflict"
    status = 409

    def __init__(self, current: dict[str, Any]) -> None:
        super().__init__(
            "Someone else saved this configuration after you loaded it; nothing was stored."
        )
        #: ``{"values": <redacted>, "version": n}`` as stored now.
        self.current = current


@dataclass
class SaveResult:
    #: The saved values, secrets redacted.
    values: dict[str, Any]
    version: int
    updated_at: datetime | None
    #: Names of the fields this save changed (empty: nothing changed, version unchanged).
    changed: list[str]
    #: Per-property mirroring status (see :func:`mirror_changes`).
    mirror: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "version": self.version,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "changed": self.changed,
            "mirror": self.mirror,
        }


def _setting_key() -> str:
    return str(connect_settings.CONFIGURE_SETTING_KEY)


def state_copy_key(tenant_pk: Any) -> str:
    """The key under which processes keep a copy of the tenant's configure-page state
    (``configure_page.read_state``) with the tenant cache's local copies."""
    return f"configure-state:{tenant_pk}"


def forget_state_copies(tenant_pk: Any, *, using: str | None = None) -> None:
    """Make every process read the tenant's configure-page state from the database again
    once the current transaction commits. Every write through this package's API, the admin
    or a model instance's ``save()``/``delete()`` calls it; call it after writing the
    configuration's rows any other way (``QuerySet.update()``, ``bulk_create()``, SQL), or
    pages may show the old state for up to ``TENANT_LOCAL_TTL`` seconds."""
    tenants.forget_local_copies(state_copy_key(tenant_pk), using=using)


@receiver(post_save, sender=AddonSetting)
@receiver(post_delete, sender=AddonSetting)
@receiver(post_save, sender=Configuration)
@receiver(post_delete, sender=Configuration)
@receiver(post_save, sender=ConfigurationChange)
@receiver(post_delete, sender=ConfigurationChange)
def _row_written(sender: type[Model], instance: Any, using: str, **kwargs: Any) -> None:
    if sender is AddonSetting and instance.key != _setting_key():
        return
    origin = kwargs.get("origin")  # post_delete: what the deletion started from
    if isinstance(origin, Tenant) or getattr(origin, "model", None) is Tenant:
        return  # the tenant goes too, and with it its page: no message per deleted row
    forget_state_copies(instance.tenant_id, using=using)


def stored_values(tenant: Tenant) -> dict[str, Any]:
    # order_by(): the models' default orderings would join the tenant table only to sort.
    value = (
        AddonSetting.objects.filter(tenant_id=tenant.pk, key=_setting_key())
        .order_by()
        .values_list("value", flat=True)
        .first()
    )
    # Anything but an object (written by hand through store.set) counts as nothing stored.
    return value if isinstance(value, dict) else {}


def current_state(tenant: Tenant, stored: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"values": <redacted>, "version": n, "updated_at": ...}`` for pages and answers
    (``stored``: the tenant's :func:`stored_values` when the caller has already read them)."""
    form_class = configure_form_class()
    if stored is None:
        stored = stored_values(tenant)
    config = Configuration.objects.filter(tenant_id=tenant.pk).order_by().first()
    return {
        "values": redact(form_class, effective_values(form_class, stored)),
        "version": config.version if config else 0,
        "updated_at": config.updated_at.isoformat() if config and config.updated_at else None,
    }


def values_for(client_key: str) -> dict[str, Any]:
    """The tenant's configuration as the app uses it: defaults overlaid with saved values.

    Secrets are included in clear: this is for the app's own server-side code.
    """
    tenant = store._tenant(client_key)
    return effective_values(configure_form_class(), stored_values(tenant))


def recent_changes(tenant: Tenant, limit: int | None = None) -> list[ConfigurationChange]:
    if limit is None:
        limit = int(connect_settings.CONFIGURE_HISTORY_ON_PAGE)
    return list(ConfigurationChange.objects.filter(tenant_id=tenant.pk)[: max(limit, 0)])


# --- submission -> form data -----------------------------------------------------------------


def _multi_valued(f: forms.Field) -> bool:
    return isinstance(f, forms.MultipleChoiceField) or bool(
        getattr(f.widget, "allow_multiple_selected", False)
    )


def _shape_error(f: forms.Field, value: Any, secret: bool) -> str | None:
    """A JSON type the field cannot take (a form would quietly stringify a list)."""
    if value is None:
        return None
    if secret:
        if isinstance(value, str) or is_redacted(value):
            return None
        return "Send a string to replace the secret, null to clear it, or leave it out."
    if isinstance(f, LineListField):
        ok = isinstance(value, list | str)
        return None if ok else "Enter a list of text values."
    if _multi_valued(f):
        return None if isinstance(value, list) else "Enter a list of values."
    if isinstance(f, forms.BooleanField | forms.NullBooleanField):
        return None if isinstance(value, bool) else "Enter true or false."
    if isinstance(value, dict | list):
        return "Enter a single value, not a list or an object."
    return None


def form_data(
    form_class: type[forms.BaseForm], current: Mapping[str, Any], submitted: Mapping[str, Any]
) -> dict[str, Any]:
    """The data to bind the form to: ``current`` (the :func:`effective_values`) overlaid with
    the submission.

    Raises :class:`ConfigurationInvalid` for unknown names and values of the wrong JSON type.
    """
    fields = form_class.base_fields
    secrets = secret_field_names(form_class)
    errors: dict[str, list[str]] = {}
    for name, value in submitted.items():
        if name not in fields:
            errors[str(name)[:100]] = ["Unknown field."]
        elif (problem := _shape_error(fields[name], value, name in secrets)) is not None:
            errors[name] = [problem]
    if errors:
        raise ConfigurationInvalid(errors)

    data: dict[str, Any] = {}
    for name, f in fields.items():
        if name in secrets:
            # The secret widget keeps the stored value unless told to clear or replace it.
            value = submitted.get(name)
            if name in submitted and value in (None, ""):
                data[f"{name}__clear"] = True
            elif isinstance(value, str):
                data[name] = value
            continue
        value = submitted[name] if name in submitted else current.get(name)
        if value is None:
            continue  # absent from data: the field's own "empty"
        if isinstance(f.widget, forms.CheckboxInput) and value is False:
            continue  # CheckboxInput reads a missing key as False
        data[name] = value
    return data


def _errors(form: forms.BaseForm, stored: Mapping[str, Any]) -> dict[str, list[str]]:
    """The form's errors; a message that quotes a secret (stored or submitted) loses it."""
    secrets = secret_field_names(type(form))
    candidates = [stored.get(n) for n in secrets] + [form.data.get(n) for n in secrets]
    leaked = [str(v) for v in candidates if v not in (None, "")]
    result: dict[str, list[str]] = {}
    for name, messages in form.errors.get_json_data().items():
        texts = [m["message"] for m in messages]
        result[name] = ["Enter a valid value." if any(s in t for s in leaked) else t for t in texts]
    return result


def _diff(
    form_class: type[forms.BaseForm], old: Mapping[str, Any], new: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    secrets = secret_field_names(form_class)
    changes: dict[str, dict[str, Any]] = {}
    for name in form_class.base_fields:
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        if name in secrets:
            changes[name] = {"from": redacted_secret(before), "to": redacted_secret(after)}
        else:
            changes[name] = {"from": before, "to": after}
    return changes


# --- the save's statements ----------------------------------------------------------------
#
# Every save runs the same statements. Building and compiling a QuerySet (or a Model.save())
# costs more CPU than the database spends running such a statement, so, as store.get does,
# the ORM compiles each statement once per database and saves only execute its SQL: table and
# column names, quoting, placeholders, LIMIT and FOR UPDATE stay the ORM's. Values written are
# prepared by their fields (get_db_prep_save) and columns read go through the converters the
# compiler names, as the ORM itself does.

#: Placeholder values the statements are compiled with; each save binds its own.
_TENANT, _ROW = -1, -2
_KEY = "\x00key"
_NAMES: dict[Any, str] = {_TENANT: "tenant", _ROW: "row", _KEY: "key"}


@dataclass(frozen=True)
class _Statement:
    sql: str
    #: The fields a write sets, in the order of its parameters (values given by attname).
    fields: tuple[Field[Any, Any], ...]
    #: Then the names of the remaining parameters ("tenant", "key", "row"), in order.
    names: tuple[str, ...]
    #: For a read: per column (by position), the converters and the expression they take.
    converters: tuple[tuple[int, list[Any], Any], ...] = ()
    #: The named parameters come before the fields' (the swap's WITH clause comes first).
    names_first: bool = False

    def params(
        self, connection: BaseDatabaseWrapper, values: Mapping[str, Any], by_name: Mapping[str, Any]
    ) -> list[Any]:
        params = [f.get_db_prep_save(values[f.attname], connection) for f in self.fields]
        named = [by_name[name] for name in self.names]
        return named + params if self.names_first else params + named

    def execute(
        self, cursor: CursorWrapper, values: Mapping[str, Any] | None = None, **by_name: Any
    ) -> None:
        cursor.execute(self.sql, self.params(cursor.db, values or {}, by_name))

    def fetch_one(self, cursor: CursorWrapper, **by_name: Any) -> list[Any] | None:
        self.execute(cursor, **by_name)
        found = cursor.fetchone()
        if found is None:
            return None
        row = list(found)
        for at, converters, expression in self.converters:
            for convert in converters:
                row[at] = convert(row[at], expression, cursor.db)
        return row


_statements: dict[tuple[str, str, str], _Statement] = {}

#: A write to run: the statement, the values of its fields, its other parameters by name.
_Write = tuple[_Statement, Mapping[str, Any], Mapping[str, Any]]


def _execute_writes(cursor: CursorWrapper, writes: list[_Write]) -> None:
    """Run the save's writes, in one round trip on PostgreSQL.

    A sync worker waits for each statement's round trip, so a save's writes cost it more
    wall time than CPU. PostgreSQL runs data-modifying statements as parts of one (``WITH w0
    AS (UPDATE ...), w1 AS (UPDATE ...) INSERT ...``): each part is the ORM's SQL unchanged,
    all see the snapshot the statement starts with (the writes touch different rows), and
    all happen or none, as in the transaction anyway. Other databases run them in turn.
    """
    if cursor.db.vendor != "postgresql" or len(writes) == 1:
        for statement, values, by_name in writes:
            statement.execute(cursor, values, **by_name)
        return
    *first, (last, _, _) = writes
    sql = "WITH " + ", ".join(f"w{i} AS ({w[0].sql})" for i, w in enumerate(first))
    params: list[Any] = []
    for statement, values, by_name in writes:
        params += statement.params(cursor.db, values, by_name)
    cursor.execute(f"{sql} {last.sql}", params)


def _statement(connection: BaseDatabaseWrapper, kind: str) -> _Statement:
    cache_key = (connection.alias, connection.vendor, kind)
    found = _statements.get(cache_key)
    if found is None:
        build = _BUILDERS.get(kind, _compile)
        found = _statements[cache_key] = build(connection, kind)
    return found


def _compile(connection: BaseDatabaseWrapper, kind: str) -> _Statement:
    """The ORM's SQL for one of the save's statements: "touch" (SQLite's write lock), "lock"
    (the configuration row), "read" (the values row), "write_values", "write_version", and
    "history" (the change row); "version" and "values" are "lock" and "read" unlocked."""
    now = timezone.now()
    fields: tuple[Field[Any, Any], ...] = ()
    reads = kind in ("lock", "read", "version", "values")
    if reads:
        # Lookups by a unique key: no ORDER BY (the settings' default ordering would join, and
        # under FOR UPDATE lock, the tenant row). FOR UPDATE only where the backend has it.
        if kind in ("lock", "version"):
            rows = Configuration.objects.filter(tenant_id=_TENANT)
            columns = ("version", "updated_at")
        else:
            rows = AddonSetting.objects.filter(tenant_id=_TENANT, key=_KEY)
            columns = ("id", "value")
        rows = rows.order_by()
        if kind in ("lock", "read"):
            rows = rows.select_for_update()
        query = rows.values_list(*columns)[:1].query
    elif kind == "touch":
        query = Configuration.objects.filter(tenant_id=_TENANT).query.chain(UpdateQuery)
        query.add_update_values({"version": F("version")})
    elif kind in ("write_values", "write_version"):
        if kind == "write_values":
            model, where, columns = AddonSetting, {"pk": _ROW}, ("value", "updated_at")
        else:
            model, where = Configuration, {"tenant_id": _TENANT}
            columns = ("version", "updated_at", "updated_by")
        fields = tuple(model._meta.get_field(name) for name in columns)
        query = model.objects.filter(**where).query.chain(UpdateQuery)
        # Placeholder values (never NULL: the compiler would write a NULL literal instead).
        sample = {"value": {}, "updated_at": now, "version": 1, "updated_by": "-"}
        query.add_update_fields([(f, None, sample[f.name]) for f in fields])
    else:  # "history"
        meta = ConfigurationChange._meta
        fields = tuple(f for f in meta.local_concrete_fields if f is not meta.auto_field)
        query = InsertQuery(ConfigurationChange)
        query.insert_values(fields, [ConfigurationChange(tenant_id=_TENANT, version=1)])
    compiler = query.get_compiler(connection=connection)
    if kind == "history":
        ((sql, params),) = compiler.as_sql()
    else:
        sql, params = compiler.as_sql()
    names = tuple(_NAMES[p] for p in list(params)[len(fields) :])
    converters: tuple[tuple[int, list[Any], Any], ...] = ()
    if reads:
        found = compiler.get_converters([expr for expr, _sql, _alias in compiler.select])
        converters = tuple((at, convs, expr) for at, (convs, expr) in found.items())
    return _Statement(sql, fields, names, converters)


def _both_rows_statement(connection: BaseDatabaseWrapper, kind: str) -> _Statement:
    """PostgreSQL: the configuration's version and its values row in one statement, both
    rows locked ("lock_both") or not ("read_both", the unlocked save's read).

    A locking read returns the newest committed version of every row it locks: when a save
    we queued behind commits, PostgreSQL re-reads both rows (EvalPlanQual) before answering,
    so the values row is as current as it is after a separate statement. The ORM cannot
    lock a row reached through a reverse relation, so the SQL is put together here from the
    models' quoted names, with the two statements' own converters. (Locking only the
    configuration row would read a stale values row: ``tests/test_configure_postgres.py``
    fails then.) No row (the first save, or the values row deleted meanwhile): the two
    statements run as before, the locks already taken being kept."""
    version, values = _statement(connection, "version"), _statement(connection, "values")
    sql = f"SELECT c.{_col(connection, Configuration, 'version')}, " + (  # noqa: S608
        f"c.{_col(connection, Configuration, 'updated_at')}, "
        f"s.{_col(connection, AddonSetting, 'id')}, s.{_col(connection, AddonSetting, 'value')}"
        f" FROM {_both_rows(connection)}"
    )
    if kind == "lock_both":
        sql += " FOR UPDATE"
    converters = version.converters + tuple((at + 2, cv, ex) for at, cv, ex in values.converters)
    return _Statement(sql, (), ("tenant", "key"), converters)


def _col(connection: BaseDatabaseWrapper, model: type[Model], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def _both_rows(connection: BaseDatabaseWrapper) -> str:
    """``FROM`` and ``WHERE`` of the statements that reach both rows: c, the configuration,
    and s, its values row; parameters: the tenant, the setting's key."""
    quote = connection.ops.quote_name
    c, s = quote(Configuration._meta.db_table), quote(AddonSetting._meta.db_table)
    c_tenant, s_tenant = (
        _col(connection, Configuration, "tenant"),
        _col(connection, AddonSetting, "tenant"),
    )
    return (
        f"{c} c JOIN {s} s ON s.{s_tenant} = c.{c_tenant}"
        f" WHERE c.{c_tenant} = %s AND s.{_col(connection, AddonSetting, 'key')} = %s"
    )


def _swap_statement(connection: BaseDatabaseWrapper, kind: str = "swap") -> _Statement:
    """PostgreSQL: the unlocked save's writes, as one statement that writes only if both
    rows still hold what the save read (see :func:`_save_unlocked`).

    ``cur`` locks the two rows where the version and the stored value are the ones read; a
    locking read checks its conditions against the newest committed row versions (waiting
    for a save in progress), so a save that committed since the read leaves ``cur`` empty,
    and then none of the three writes happens. Each write reaches its row through ``cur``,
    so the statement answers one row when it wrote and none when it did not. That row holds
    whether a process may keep a copy of the state (``copies_held``, as locked), which the
    write clears: only then does the save publish an invalidation."""
    quote = connection.ops.quote_name
    s_id, c_tenant = _col(connection, AddonSetting, "id"), _col(connection, Configuration, "tenant")
    values = tuple(AddonSetting._meta.get_field(n) for n in ("value", "updated_at"))
    version = tuple(
        Configuration._meta.get_field(n) for n in ("version", "updated_at", "updated_by")
    )
    meta = ConfigurationChange._meta
    history = tuple(f for f in meta.local_concrete_fields if f is not meta.auto_field)

    def assign(fields: tuple[Field[Any, Any], ...]) -> str:
        return ", ".join(f"{quote(f.column)} = %s" for f in fields)

    held = _col(connection, Configuration, "copies_held")
    sql = (
        f"WITH cur AS (SELECT s.{s_id} AS s_id, c.{c_tenant} AS c_tenant,"  # noqa: S608
        f" c.{held} AS held"
        f" FROM {_both_rows(connection)} AND c.{_col(connection, Configuration, 'version')} = %s"
        f" AND s.{_col(connection, AddonSetting, 'value')} IS NOT DISTINCT FROM %s FOR UPDATE),"
        f" w0 AS (UPDATE {quote(AddonSetting._meta.db_table)} SET {assign(values)}"
        f" WHERE {s_id} IN (SELECT s_id FROM cur)),"
        f" w1 AS (UPDATE {quote(Configuration._meta.db_table)} SET {assign(version)},"
        f" {held} = false WHERE {c_tenant} IN (SELECT c_tenant FROM cur)),"
        f" w2 AS (INSERT INTO {quote(meta.db_table)}"
        f" ({', '.join(quote(f.column) for f in history)})"
        f" SELECT {', '.join(['%s'] * len(history))} FROM cur)"
        " SELECT held FROM cur"
    )
    names = ("tenant", "key", "version", "old")
    return _Statement(sql, values + version + history, names, names_first=True)


_BUILDERS = {
    "lock_both": _both_rows_statement,
    "read_both": _both_rows_statement,
    "swap": _swap_statement,
}


def _lock_and_read(
    cursor: CursorWrapper, tenant: Tenant
) -> tuple[int, datetime | None, list[Any] | None]:
    """(version, updated_at, the values row) of :func:`_lock` and :func:`_locked_values_row`,
    in one round trip on PostgreSQL when both rows exist (every save but the first)."""
    if cursor.db.vendor == "postgresql":
        both = _statement(cursor.db, "lock_both").fetch_one(
            cursor, tenant=tenant.pk, key=_setting_key()
        )
        if both is not None:
            return both[0], both[1], both[2:]
    version, updated_at = _lock(cursor, tenant)
    return version, updated_at, _locked_values_row(cursor, tenant)


def _lock(cursor: CursorWrapper, tenant: Tenant) -> tuple[int, datetime | None]:
    """The tenant's configuration ``(version, updated_at)``, its row locked until the
    transaction ends (created if need be).

    Concurrent saves of a tenant queue here. PostgreSQL: SELECT ... FOR UPDATE takes the row
    lock. SQLite has no row locks: write before reading anything, so the transaction takes
    the database write lock first (a read first would make SQLite fail one of two concurrent
    saves with "database is locked" instead of queueing it). The first save creates the row
    (get_or_create handles that race) and then locks it like any other.
    """
    connection = cursor.db
    if not connection.features.has_select_for_update:
        _statement(connection, "touch").execute(cursor, tenant=tenant.pk)
    lock = _statement(connection, "lock")
    locked = lock.fetch_one(cursor, tenant=tenant.pk)
    if locked is None:
        Configuration.objects.using(connection.alias).get_or_create(tenant_id=tenant.pk)
        locked = lock.fetch_one(cursor, tenant=tenant.pk)
        if locked is None:  # created just now: only the tenant's deletion removes it
            raise Configuration.DoesNotExist("The tenant's configuration was deleted.")
    version, updated_at = locked
    return version, updated_at


def _locked_values_row(cursor: CursorWrapper, tenant: Tenant) -> list[Any] | None:
    """``[id, value]`` of the configuration's setting row, locked, or None.

    Read once the configuration is locked, in a later statement: a statement sees what had
    committed when it started, except in the rows it locks itself, so only a later statement
    sees what the save we queued behind wrote (PostgreSQL's one statement for both locks
    both rows for that reason). FOR UPDATE also holds off a direct store.set of the key.
    """
    read = _statement(cursor.db, "read")
    return read.fetch_one(cursor, tenant=tenant.pk, key=_setting_key())


def _write_values(
    cursor: CursorWrapper,
    tenant: Tenant,
    row: list[Any] | None,
    value: dict[str, Any],
    now: datetime,
) -> list[_Write]:
    """Store the configuration as :func:`store.set` does (mirror outbox rows in this
    transaction, ``setting_changed`` after commit), reusing the row the save has locked.

    Returns the write of the values row for the caller to run with its own writes (none on
    the first save, which goes through the store's upsert: it copes with a concurrent
    store.set)."""
    key = _setting_key()
    if row is None:
        store.set(key, value, tenant)
        return []
    store.check_value(value)
    row_id, old = row
    mirror.record(tenant, key, value)
    store.notify_changed(tenant, key, old, value, deleted=False)
    write = _statement(cursor.db, "write_values")
    return [(write, {"value": value, "updated_at": now}, {"row": row_id})]


def mirror_changes(tenant: Tenant) -> dict[str, Any]:
    """The answer's ``"mirror"``: the status of each mirrored property of the configuration,
    read after the save committed (so an immediate task backend has already delivered); no
    query when nothing of it is mirrored."""
    wanted = {s.property for s in mirror.specs_for(_setting_key())}
    if not wanted:
        return {}
    return {key: value for key, value in mirror.status_for(tenant).items() if key in wanted}


def _checked(
    form_class: type[forms.BaseForm],
    stored: dict[str, Any],
    current_version: int,
    submitted: Mapping[str, Any],
    version: int | None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]:
    """``(old, cleaned, changes)``: the effective values as stored, the submission's values
    once validated, and what differs; raises for a stale ``version`` or invalid values."""
    old = effective_values(form_class, stored)
    if version is not None and version != current_version:
        raise ConfigurationConflict({"values": redact(form_class, old), "version": current_version})
    data = form_data(form_class, old, submitted)
    form = build_form(form_class, stored, data=data, values=old)
    if not form.is_valid():
        raise ConfigurationInvalid(_errors(form, stored), form)
    cleaned = {name: to_json(form.cleaned_data.get(name)) for name in form_class.base_fields}
    return old, cleaned, _diff(form_class, old, cleaned)


def _change_rows(
    tenant: Tenant,
    new_version: int,
    now: datetime,
    changes: dict[str, dict[str, Any]],
    account_id: str | None,
    staff_user: str,
    source: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The configuration row's new values and the history row, by attname."""
    updated_by = f"staff:{staff_user}" if staff_user else (account_id or "")
    configuration = {"version": new_version, "updated_at": now, "updated_by": updated_by}
    history = {
        "tenant_id": tenant.pk,
        "version": new_version,
        "changed_at": now,
        "account_id": account_id or "",
        "staff_user": staff_user,
        "source": source,
        "changes": changes,
    }
    return configuration, history


def _unlocked_saves(connection: BaseDatabaseWrapper) -> bool:
    """Whether saves try :func:`_save_unlocked` first: PostgreSQL (one statement can check
    and write), and nothing mirrored from the configuration (the outbox's rows are written
    by the ORM, in the save's transaction)."""
    return connection.vendor == "postgresql" and not mirror.specs_for(_setting_key())


def _save_unlocked(
    cursor: CursorWrapper,
    tenant: Tenant,
    form_class: type[forms.BaseForm],
    submitted: Mapping[str, Any],
    version: int | None,
    who: tuple[str | None, str, str],
) -> SaveResult | None:
    """A save in two statements and no transaction of its own: read both rows unlocked,
    validate, then write only if the rows still hold what was read (the "swap" statement,
    which checks and writes both rows and the history in one). None when there is nothing
    to read yet (the first save) or another write came first: the caller then saves with
    the rows locked, reading them again.

    A save in its own transaction waits for BEGIN, the locked read, the writes and COMMIT:
    four round trips, during which a sync worker has nothing else to do. Here it waits for
    two, and holds the rows' locks only while the one writing statement runs."""
    connection = cursor.db
    key = _setting_key()
    read = _statement(connection, "read_both").fetch_one(cursor, tenant=tenant.pk, key=key)
    if read is None:
        return None
    current_version, updated_at, _row_id, value = read
    stored = value if isinstance(value, dict) else {}
    old, cleaned, changes = _checked(form_class, stored, current_version, submitted, version)
    if not changes:
        return SaveResult(redact(form_class, old), current_version, updated_at, [])
    new = {**stored, **cleaned}  # undeclared keys kept (an older release may need them)
    store.check_value(new)
    now = timezone.now()
    configuration, history = _change_rows(tenant, current_version + 1, now, changes, *who)
    # One mapping for the three rows' fields: the attnames they share ("version",
    # "updated_at") take the same value in each.
    fields = {"value": new, **configuration, **history}
    was = AddonSetting._meta.get_field("value").get_db_prep_save(value, connection)
    swap = _statement(connection, "swap")
    swap.execute(cursor, fields, tenant=tenant.pk, key=key, version=current_version, old=was)
    written = cursor.fetchone()
    if written is None:
        return None
    # After the write (at once in autocommit, else when the caller's transaction commits).
    store.notify_changed(tenant, key, value, new, deleted=False)
    if written[0]:  # a process may hold a copy of the state: it must drop it
        forget_state_copies(tenant.pk, using=connection.alias)
    return SaveResult(redact(form_class, cleaned), current_version + 1, now, list(changes))


def _save_locked(
    connection: BaseDatabaseWrapper,
    tenant: Tenant,
    form_class: type[forms.BaseForm],
    submitted: Mapping[str, Any],
    version: int | None,
    who: tuple[str | None, str, str],
) -> SaveResult:
    """A save in a transaction that locks both rows before reading them."""
    # One cursor for the save's statements (a cursor per statement costs ~25 µs more each).
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        current_version, updated_at, row = _lock_and_read(cursor, tenant)
        # Anything but an object (written by hand through store.set) counts as nothing stored.
        stored = row[1] if row is not None and isinstance(row[1], dict) else {}
        old, cleaned, changes = _checked(form_class, stored, current_version, submitted, version)
        if not changes:
            return SaveResult(redact(form_class, old), current_version, updated_at, [])
        now = timezone.now()
        # Keys the form no longer declares are kept: an older release may still need them.
        writes = _write_values(cursor, tenant, row, {**stored, **cleaned}, now)
        configuration, history = _change_rows(tenant, current_version + 1, now, changes, *who)
        writes.append(
            (_statement(connection, "write_version"), configuration, {"tenant": tenant.pk})
        )
        writes.append((_statement(connection, "history"), history, {}))
        _execute_writes(cursor, writes)
        forget_state_copies(tenant.pk, using=connection.alias)  # the writes were SQL
    return SaveResult(redact(form_class, cleaned), current_version + 1, now, list(changes))


def save_configuration(
    tenant: Tenant,
    submitted: Mapping[str, Any],
    *,
    version: int | None = None,
    account_id: str | None = None,
    staff_user: str = "",
    source: str = ConfigurationChange.Source.PAGE,
) -> SaveResult:
    """Validate ``submitted`` with the configure form and store it.

    ``version`` given and not the current one: :class:`ConfigurationConflict`. Invalid values:
    :class:`ConfigurationInvalid`. Either way nothing is stored. A save that changes nothing
    keeps the version and writes no history. The values, the version and the history entry
    are written together or not at all, and a save never writes over one that committed
    after it read: on PostgreSQL it reads unlocked and writes only if nothing changed
    meanwhile (:func:`_save_unlocked`), else, and elsewhere, it locks the rows first.
    """
    form_class = configure_form_class()
    connection = connections[router.db_for_write(Configuration)]
    who = (account_id, staff_user, source)
    result = None
    if _unlocked_saves(connection):
        # In the caller's transaction, a savepoint: a failed write must not abort it.
        inside = connection.in_atomic_block
        scope = transaction.atomic(using=connection.alias) if inside else nullcontext()
        with scope, connection.cursor() as cursor:
            result = _save_unlocked(cursor, tenant, form_class, submitted, version, who)
    if result is None:
        result = _save_locked(connection, tenant, form_class, submitted, version, who)
    if not result.changed:
        return result
    result.mirror = mirror_changes(tenant)
    logger.info(
        "Configuration of tenant %s saved as version %d (fields: %s)",
        tenant.client_key,
        result.version,
        ", ".join(result.changed),
    )
    return result
