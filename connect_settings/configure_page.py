"""What the configure page reads and renders, at the cost of one query and a cache lookup.

**Reading.** :func:`read_state` reads the tenant's stored values, the version row and the
newest changes in one round trip (the page used to make four queries). On PostgreSQL it reads
a SHA-256 of those changes' row versions instead, computed by the database: the rows
themselves are read only when their rendering is not cached. The mirror status is read only
when something is mirrored. With Redis as the tenant cache, each process keeps what that
query read beside its tenant copies, until a write of any of those rows commits (anywhere)
or ``TENANT_LOCAL_TTL`` runs out: a warm page load then makes no query at all.

**Rendering.** The page is rendered on every load: it carries a fresh session token, the
version, the recent history and the mirror status. Its form part (every field's label,
widget, help text, and the redacted values the page's script starts from) is a pure
function of

- the form class,
- the tenant's stored values,
- the active language and time zone,
- the templates (``connect_settings/configure_fields.html`` and what it includes),

so :func:`form_part` renders it through the templates once per such combination and keeps
the result in a small in-process LRU. The key holds a digest of the stored values *as read
by this request*, so every write (a versioned save, a bare ``store.set``, the admin, a data
migration) changes the key: nothing is ever invalidated and nothing can be served stale.
The history section is cached the same way by :func:`history_part`, keyed by every column
of the change rows this request read, or on PostgreSQL by each row version's identity
(``configure_history.html`` is rendered with ``history`` only, like the fields with ``form``
and ``rows`` only: neither may depend on the request). Each of its entries is cached too,
keyed by its own row: after a save, the section renders only the new entry again.
Templates are read once per process in production (Django's cached loader does the same);
with ``DEBUG`` on nothing is cached, so template edits show at once, and a settings change
(``override_settings`` in tests) empties the cache.

A form whose rendering depends on more than its stored values (choices read from the
database in ``__init__``, a callable ``initial``) opts out with ``cache_rendering = False``
on the form class.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal
from uuid import UUID

from django import forms
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import setting_changed
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field
from django.db.models.expressions import RawSQL
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.utils import timezone, translation
from django.utils.safestring import SafeString

from . import mirror
from .conf import connect_settings
from .configuration import mirror_changes, state_copy_key
from .forms import build_form, describe_change, effective_values, field_rows, redact
from .lru import LRU
from .models import AddonSetting, Configuration, ConfigurationChange, Tenant
from .tenants import keep_local_copy, local_copy

__all__ = [
    "FIELDS_TEMPLATE",
    "HISTORY_TEMPLATE",
    "FormPart",
    "PageState",
    "RecentChanges",
    "asset_urls",
    "clear_cache",
    "describe_history",
    "digest",
    "form_part",
    "history_part",
    "mirror_status",
    "read_state",
    "recent_changes",
    "render_form_part",
    "render_history_part",
]

#: Renders the fields of the form (``rows``, ``form``); includes ``configure_field.html``.
FIELDS_TEMPLATE = "connect_settings/configure_fields.html"
#: Distinct (form, stored values, language, time zone) renderings kept per process.
CACHE_SIZE = 512


@dataclass(frozen=True)
class FormPart:
    #: The rendered fields (or the "nothing to configure" note).
    html: SafeString
    #: The effective values, secrets redacted: the page's ``app-settings`` JSON. Shared
    #: between requests: read it, never change it.
    values: Mapping[str, Any]
    #: What it was rendered from (form, stored values' digest, language, time zone), when it
    #: is cached; None when it is rendered for this request only.
    key: tuple[Any, ...] | None = None


_cache = LRU(CACHE_SIZE)


def clear_cache(**_: Any) -> None:
    _cache.clear()
    _entries.clear()
    asset_urls.cache_clear()
    _state_sql_by_alias.clear()
    _history_sql.clear()
    _converters_by_field.clear()


# Settings decide templates, languages, formats and the form class: any change empties it.
setting_changed.connect(clear_cache, dispatch_uid="connect_settings.configure_page")


def render_form_part(form_class: type[forms.BaseForm], stored: Mapping[str, Any]) -> FormPart:
    """The form part rendered now, uncached."""
    form = build_form(form_class, stored)
    # No request: the fragment must not depend on one (it is shared between requests).
    html = render_to_string(FIELDS_TEMPLATE, {"form": form, "rows": field_rows(form)})
    values = redact(form_class, effective_values(form_class, stored))
    return FormPart(SafeString(html), values)


def digest(value: Any) -> bytes:
    """A short digest of a JSON-able value (a cache key part that keeps no secret in clear)."""
    # Canonical JSON (JSON tells true from 1 and 1 from 1.0; dates as ISO strings); hashed,
    # so that the cache keeps no stored secret in clear.
    canonical = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder
    )
    return hashlib.blake2b(canonical.encode(), digest_size=20).digest()


def page_locale() -> tuple[str | None, str]:
    """The active language and time zone: part of every cached fragment's key. (Each read
    costs several microseconds through asgiref's locals: a page reads them once.)"""
    return translation.get_language(), timezone.get_current_timezone_name()


def form_part(
    form_class: type[forms.BaseForm],
    stored: Mapping[str, Any],
    stored_digest: bytes | None = None,
    locale: tuple[str | None, str] | None = None,
) -> FormPart:
    """The form part for ``stored``, from the cache when the same inputs were rendered before.

    ``stored_digest`` (``PageState.stored_digest``) saves re-encoding the values to hash them;
    ``locale``, reading :func:`page_locale` again.
    """
    if settings.DEBUG or not getattr(form_class, "cache_rendering", True):
        return render_form_part(form_class, stored)
    key = ("form", form_class, stored_digest or digest(stored), *(locale or page_locale()))
    part = _cache.get(key)
    if part is None:
        rendered = render_form_part(form_class, stored)
        part = FormPart(rendered.html, rendered.values, key)
        _cache.put(key, part)
    return part


#: Renders the recent changes (``history``: entries of ``change`` and ``fields``).
HISTORY_TEMPLATE = "connect_settings/configure_history.html"


#: Renders one entry of the history (``entry``: ``change`` and ``fields``).
HISTORY_ENTRY_TEMPLATE = "connect_settings/configure_history_entry.html"

#: Rendered history entries kept per process (a page shows up to CONFIGURE_HISTORY_ON_PAGE).
ENTRY_CACHE_SIZE = 4096

_entries = LRU(ENTRY_CACHE_SIZE)


def describe_history(
    form_class: type[forms.BaseForm], changes: list[ConfigurationChange]
) -> list[dict[str, Any]]:
    return [{"change": c, "fields": describe_change(form_class, c.changes)} for c in changes]


class HistoryEntry:
    """One change as ``configure_history.html`` shows it: ``change``, ``fields`` and, rendered
    on first use, ``html``. With a ``key`` (the form class, the change's row as the database
    returned it, the language and time zone) ``html`` comes from the entry cache."""

    def __init__(
        self,
        form_class: type[forms.BaseForm],
        change: ConfigurationChange,
        key: tuple[Any, ...] | None,
    ) -> None:
        self.form_class = form_class
        self.change = change
        self.key = key

    @functools.cached_property
    def fields(self) -> list[dict[str, Any]]:
        return describe_change(self.form_class, self.change.changes)

    @functools.cached_property
    def html(self) -> SafeString:
        if self.key is None:
            return self._render()
        try:
            html = _entries.get(self.key)
        except TypeError:  # a driver returned an unhashable column value: render, don't cache
            return self._render()
        if html is None:
            html = self._render()
            _entries.put(self.key, html)
        return html

    def _render(self) -> SafeString:
        return SafeString(render_to_string(HISTORY_ENTRY_TEMPLATE, {"entry": self}))


def render_history_part(
    form_class: type[forms.BaseForm],
    changes: list[ConfigurationChange],
    rows: tuple[tuple[Any, ...], ...] | None = None,
    locale: tuple[str | None, str] | None = None,
) -> SafeString:
    """The history section rendered now; its entries from the entry cache when ``rows`` (the
    changes as the database returned them) are given."""
    keys: list[tuple[Any, ...] | None] = [None] * len(changes)
    if rows is not None:
        locale = locale or page_locale()
        keys = [("entry", form_class, row, *locale) for row in rows]
    history = [HistoryEntry(form_class, c, k) for c, k in zip(changes, keys, strict=True)]
    return SafeString(render_to_string(HISTORY_TEMPLATE, {"history": history}))


def history_part(
    form_class: type[forms.BaseForm],
    changes: RecentChanges,
    locale: tuple[str | None, str] | None = None,
) -> SafeString:
    """The history section for these changes, from the cache when it was rendered before.

    Keyed by every column of every change shown, as the database returned them, or on
    PostgreSQL by the database's SHA-256 of their ids and row versions (and by the form, for
    its labels), so a change row edited or deleted in the database is a different key like
    a new one. A hit builds no model instance and decodes no JSON; with a digest, it reads
    no change row.
    """
    if settings.DEBUG or not getattr(form_class, "cache_rendering", True):
        return render_history_part(form_class, changes.instances)
    locale = locale or page_locale()
    key = ("history", form_class, changes.key, *locale)
    try:
        part = _cache.get(key)
    except TypeError:  # a driver returned an unhashable column value: render, don't cache
        return render_history_part(form_class, changes.instances)
    if part is None:
        rows = changes.rows  # read now when only their digest was (the key follows them)
        part = render_history_part(form_class, changes.instances, rows, locale)
        _cache.put(key, part)
    return part


@functools.cache
def asset_urls() -> Mapping[str, str]:
    """The page's stylesheet and script, as ``{% static %}`` gives them (once per process:
    the tag costs more than the rest of the page's head)."""
    return MappingProxyType(
        {
            "css": static("connect_settings/configure.css"),
            "js": static("connect_settings/configure.js"),
        }
    )


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageState:
    #: The stored values (``{}`` when nothing, or something other than an object, is stored).
    stored: dict[str, Any]
    version: int
    updated_at: datetime | None
    #: Whether the tenant has any configuration history at all.
    has_history: bool
    #: A digest of the stored value's JSON text as the database returned it (None when the
    #: driver decoded it itself): equal texts decode to equal values, so it can key a cache.
    stored_digest: bytes | None = None
    #: The newest ``CONFIGURE_HISTORY_ON_PAGE`` changes as the database returned them, read
    #: in the same query (None: not read with the state).
    history: tuple[tuple[Any, ...], ...] | None = None
    #: On PostgreSQL, a SHA-256 of those changes instead of the rows: a page whose history
    #: part is cached reads no change row at all (None: no changes, or not read).
    history_digest: bytes | None = None


@dataclass(frozen=True)
class _StateQuery:
    sql: str
    #: How the newest changes come with the state: "exists" (whether there are any: the page
    #: shows none), "rows" (the rows themselves) or "digest" (PostgreSQL: a SHA-256 of the
    #: rows, which are read only when the history part is not cached).
    history: Literal["exists", "rows", "digest"]
    #: Where the history query's tenant parameter goes among the parameters.
    tenant_at: int = 0
    #: PostgreSQL, for a read a process keeps: first marks the configuration row as copied
    #: (``Configuration.copies_held``), which then answers its newest version last.
    marks: bool = False


#: The state query per (database alias, history limit, marks), built once: quoting names
#: and compiling the history's SQL cost more than the query.
_state_sql_by_alias: dict[tuple[str, int, bool], _StateQuery] = {}


def _state_sql(connection: BaseDatabaseWrapper, limit: int, marks: bool) -> _StateQuery:
    key = (connection.alias, limit, marks)
    found = _state_sql_by_alias.get(key)
    if found is None:
        found = _state_sql_by_alias[key] = _build_state_sql(connection, limit, marks)
    return found


def _column(connection: BaseDatabaseWrapper, model: type[Any], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def _table(connection: BaseDatabaseWrapper, model: type[Any]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _history_order(connection: BaseDatabaseWrapper) -> str:
    """The history's ordering (the model's, as the ORM's query has it) over alias ``h``."""
    return ", ".join(
        f"h.{_column(connection, ConfigurationChange, name.lstrip('-'))}"
        + (" DESC" if name.startswith("-") else "")
        for name in ConfigurationChange._meta.ordering
    )


#: PostgreSQL's identity of a row version: a change added, deleted or edited in place has
#: another. Every UPDATE writes a new version of the row at a new ``ctid`` (the old one
#: stays until the writing transaction ends, so one transaction never reuses it), and a
#: ``ctid`` freed by VACUUM comes back with the ``xmin`` of another transaction.
_ROW_VERSION = "row_version"


def _row_version_sql(connection: BaseDatabaseWrapper) -> str:
    table = _table(connection, ConfigurationChange)
    return f"{table}.xmin::text || '/' || {table}.ctid::text"


def _history_digest_sql(connection: BaseDatabaseWrapper, history: str) -> str:
    # Every change's id and row version, in the page's order. (A digest of every column's
    # value, timestamps printed and JSON hashed, took PostgreSQL 85 µs per state query
    # against 54 µs for this, for ten changes.)
    version = connection.ops.quote_name(_ROW_VERSION)
    order = _history_order(connection)
    return (
        f"(SELECT sha256(convert_to(string_agg(h.{_column(connection, ConfigurationChange, 'id')}"  # noqa: S608
        f"::text || ' ' || h.{version}, ',' ORDER BY {order}), 'UTF8')) FROM ({history}) h)"
    )


def _build_state_sql(connection: BaseDatabaseWrapper, limit: int, marks: bool) -> _StateQuery:
    # Identifiers only come from the models, quoted; every value is a query parameter.
    def col(model: type[Any], name: str) -> str:
        return _column(connection, model, name)

    if marks:  # PostgreSQL only (see read_state)
        # The UPDATE locks the row: it waits for a save in progress and answers the newest
        # committed version, where the SELECT reads the statement's snapshot. Both equal:
        # no save committed in between, and every later one sees the mark. (Setting it only
        # where it is not yet set would answer nothing when another reader set it, whatever
        # the snapshot read.)
        plain = _build_state_sql(connection, limit, marks=False)
        version = col(Configuration, "version")
        sql = (
            f"WITH held AS (UPDATE {_table(connection, Configuration)}"  # noqa: S608
            f" SET {col(Configuration, 'copies_held')} = true"
            f" WHERE {col(Configuration, 'tenant')} = %s RETURNING {version})"
            f" {plain.sql}, (SELECT {version} FROM held)"
        )
        # One parameter more in front: the history's tenant parameter moves one along.
        tenant_at = plain.tenant_at + 1 if plain.history == "digest" else plain.tenant_at
        return _StateQuery(sql, plain.history, tenant_at, marks=True)

    setting, configuration = _table(connection, AddonSetting), _table(connection, Configuration)
    state = (
        f"(SELECT {col(AddonSetting, 'value')} FROM {setting}"  # noqa: S608
        f" WHERE {col(AddonSetting, 'tenant')} = %s AND {col(AddonSetting, 'key')} = %s),"
        f" (SELECT {col(Configuration, 'version')} FROM {configuration}"
        f" WHERE {col(Configuration, 'tenant')} = %s),"
        f" (SELECT {col(Configuration, 'updated_at')} FROM {configuration}"
        f" WHERE {col(Configuration, 'tenant')} = %s)"
    )
    suffix = connection.features.bare_select_suffix
    if limit <= 0:
        exists = (
            f"EXISTS (SELECT 1 FROM {_table(connection, ConfigurationChange)}"  # noqa: S608
            f" WHERE {col(ConfigurationChange, 'tenant')} = %s)"
        )
        return _StateQuery(f"SELECT {state}, {exists}{suffix}", "exists")
    postgres = connection.vendor == "postgresql"
    history, tenant_at, fields = _compiled_history(connection.alias, limit, versions=postgres)
    if postgres:
        digest = _history_digest_sql(connection, history)
        return _StateQuery(f"SELECT {state}, {digest}{suffix}", "digest", 4 + tenant_at)
    # Elsewhere the rows themselves, in the same round trip: the state's one row joined to
    # the ORM's own history query (its ordering and limit), one output row per change, or
    # one row of NULLs.
    columns = ", ".join(f"h.{connection.ops.quote_name(f.column)}" for f in fields)
    sql = (
        f"SELECT {state}, {columns} FROM (SELECT 1 AS one{suffix}) one"  # noqa: S608
        f" LEFT JOIN ({history}) h ON 1 = 1 ORDER BY {_history_order(connection)}"
    )
    return _StateQuery(sql, "rows", 4 + tenant_at)


#: (alias, field) -> (column, its converters): looked up once, like the compiled SQL.
_converters_by_field: dict[tuple[str, Field[Any, Any]], tuple[Any, list[Any]]] = {}


def _from_db(connection: BaseDatabaseWrapper, field: Field[Any, Any], value: Any) -> Any:
    # What the ORM does to a column it reads: the backend's converters, then the field's.
    if value is None:
        return None
    found = _converters_by_field.get((connection.alias, field))
    if found is None:
        column = field.get_col(field.model._meta.db_table)
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        found = _converters_by_field[(connection.alias, field)] = (column, converters)
    column, converters = found
    for convert in converters:
        value = convert(value, column, connection)
    return value


#: What :func:`read_state` reads, as the database returned it: (value, version, updated_at,
#: has_history, history rows, history digest), and the value's digest (computed once per
#: read, not per page). Immutable, so a process may keep it.
_Read = tuple[
    Any, int | None, Any, bool, tuple[tuple[Any, ...], ...] | None, bytes | None, bytes | None
]


def read_state(tenant: Tenant) -> PageState:
    """The page's state in one query (scalar subqueries, whatever exists), with the newest
    ``CONFIGURE_HISTORY_ON_PAGE`` changes.

    The same reads as ``configuration.stored_values`` and ``current_state``: the setting row
    under ``CONFIGURE_SETTING_KEY`` and the tenant's ``Configuration`` row, by tenant id only
    (no join with the tenant table).

    With Redis as ``TENANT_CACHE``, each process keeps what it read beside its tenant copies
    (see :mod:`connect_settings.tenants`): a warm page load makes no query. Every write drops
    the copies in every process when it commits (``configuration.forget_state_copies``).
    Inside a transaction the database is always read, and nothing is kept: the transaction
    may see its own uncommitted writes. Nor when reads are routed to another database than
    writes: a replica may still show a write whose invalidation has already arrived.
    """
    # The three tables share a database: save_configuration writes them in one transaction.
    alias = router.db_for_read(AddonSetting)
    connection = connections[alias]
    read: _Read | None = None
    stamp = None
    if not connection.in_atomic_block and alias == router.db_for_write(AddonSetting):
        read, stamp = local_copy(state_copy_key(tenant.pk))
    if read is None:
        # A read to keep marks the row first, so that the next save tells every process to
        # drop its copy; a save finding no mark publishes nothing (configuration._save_unlocked).
        marks = stamp is not None and connection.vendor == "postgresql"
        read, current = _read_state(connection, tenant, marks=marks)
        if stamp is not None and current and _immutable(read):
            keep_local_copy(state_copy_key(tenant.pk), read, stamp)
    value, version, updated_at, has_history, history, history_digest, stored_digest = read
    stored = _from_db(connection, AddonSetting._meta.get_field("value"), value)
    updated = _from_db(connection, Configuration._meta.get_field("updated_at"), updated_at)
    return PageState(
        # Anything but an object (written by hand through store.set) counts as nothing stored.
        stored=stored if isinstance(stored, dict) else {},
        version=version or 0,
        updated_at=updated,
        has_history=has_history,
        stored_digest=stored_digest,
        history=history,
        history_digest=history_digest,
    )


_SCALARS = (str, bytes, int, float, bool, datetime, date, time, Decimal, UUID, type(None))


def _immutable(read: _Read) -> bool:
    # Drivers return JSON as text here, but one that decodes it itself returns dicts, which
    # every later page would share.
    value, _version, _updated, _has, history, _digest, _stored_digest = read
    return isinstance(value, (str, type(None))) and (
        history is None or all(isinstance(cell, _SCALARS) for row in history for cell in row)
    )


def _read_state(
    connection: BaseDatabaseWrapper, tenant: Tenant, *, marks: bool
) -> tuple[_Read, bool]:
    """(what the state query read, whether a copy of it may be kept: with ``marks``, only
    when no save committed between the read and the mark)."""
    key = str(connect_settings.CONFIGURE_SETTING_KEY)
    limit = int(connect_settings.CONFIGURE_HISTORY_ON_PAGE)
    query = _state_sql(connection, limit, marks)
    params: list[Any] = [tenant.pk, key, tenant.pk, tenant.pk]
    if query.marks:
        params.insert(0, tenant.pk)
    history: tuple[tuple[Any, ...], ...] | None = None
    history_digest: bytes | None = None
    marked: list[Any] = []  # the newest version, as the mark answered it
    with connection.cursor() as cursor:
        if query.history == "exists":
            cursor.execute(query.sql, [*params, tenant.pk])
            value, version, updated_at, has_history, *marked = cursor.fetchone()
        elif query.history == "digest":
            params.insert(query.tenant_at, tenant.pk)
            cursor.execute(query.sql, params)
            value, version, updated_at, found, *marked = cursor.fetchone()
            history_digest = None if found is None else bytes(found)
            has_history = history_digest is not None
        else:
            params.insert(query.tenant_at, tenant.pk)
            cursor.execute(query.sql, params)
            rows = cursor.fetchall()
            value, version, updated_at = rows[0][:3]
            # A change's primary key is never NULL: a row of NULLs means no history.
            history = tuple(row[3:] for row in rows if row[3] is not None)
            has_history = bool(history)
    stored_digest = (
        hashlib.blake2b(value.encode(), digest_size=20).digest() if isinstance(value, str) else None
    )
    read = value, version, updated_at, bool(has_history), history, history_digest, stored_digest
    return read, not query.marks or marked[0] == version


#: The history query per (database alias, limit): compiled by the ORM once, executed after.
_history_sql: dict[tuple[str, int, bool], tuple[str, int, list[Field[Any, Any]]]] = {}


def _compiled_history(
    alias: str, limit: int, *, versions: bool = False
) -> tuple[str, int, list[Field[Any, Any]]]:
    """The ORM's SQL for the newest changes, the tenant parameter's position and the fields
    selected; ``versions`` (PostgreSQL): each row's version too, as ``row_version``."""
    found = _history_sql.get((alias, limit, versions))
    if found is None:
        rows = ConfigurationChange.objects.filter(tenant_id=-1)
        if versions:
            # System columns, named from the model's table: no value goes into this SQL.
            version = RawSQL(_row_version_sql(connections[alias]), ())  # noqa: S611
            rows = rows.annotate(**{_ROW_VERSION: version})
        sql, params = rows[:limit].query.get_compiler(using=alias).as_sql()
        fields = list(ConfigurationChange._meta.concrete_fields)
        found = _history_sql[(alias, limit, versions)] = (sql, list(params).index(-1), fields)
    return found


class RecentChanges:
    """The newest changes: ``key`` identifies them for the history cache (their rows as the
    database returned them, or the database's digest of those rows), ``rows`` are read on
    first use when only their digest was, and ``instances`` are built from the rows."""

    def __init__(
        self,
        alias: str,
        fields: list[Field[Any, Any]],
        rows: list[tuple[Any, ...]] | None,
        *,
        digest: bytes | None = None,
        load: Callable[[], tuple[list[tuple[Any, ...]], bytes | None]] | None = None,
    ):
        self.alias = alias
        self.fields = fields
        self._rows = None if rows is None else tuple(rows)
        self._digest = digest
        self._load = load

    @property
    def key(self) -> Hashable:
        return self._rows if self._digest is None else self._digest

    @property
    def rows(self) -> tuple[tuple[Any, ...], ...]:
        if self._rows is None:
            if self._load is None:
                raise ValueError("RecentChanges without rows needs a loader")
            # The rows and their digest from one statement: the key matches what is shown.
            rows, self._digest = self._load()
            self._rows = tuple(rows)
        return self._rows

    @functools.cached_property
    def instances(self) -> list[ConfigurationChange]:
        # As a queryset builds them: the ORM's converters, then from_db.
        connection = connections[self.alias]
        names = [f.attname for f in self.fields]
        return [
            ConfigurationChange.from_db(
                self.alias,
                names,
                [_from_db(connection, f, v) for f, v in zip(self.fields, row, strict=True)],
            )
            for row in self.rows
        ]


def _rows_and_digest(alias: str, tenant_pk: Any, limit: int) -> Callable[[], Any]:
    """A loader of the newest changes with their digest, as the state query computes it."""

    def load() -> tuple[list[tuple[Any, ...]], bytes | None]:
        connection = connections[alias]
        history, tenant_at, fields = _compiled_history(alias, limit, versions=True)
        columns = ", ".join(f"h.{connection.ops.quote_name(f.column)}" for f in fields)
        digest = _history_digest_sql(connection, history)
        sql = (
            f"SELECT {columns}, {digest} FROM ({history}) h"  # noqa: S608
            f" ORDER BY {_history_order(connection)}"
        )
        params: list[Any] = []
        params.insert(tenant_at, tenant_pk)
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, *params])
            rows = cursor.fetchall()
        found = rows[0][-1] if rows else None
        return [row[:-1] for row in rows], None if found is None else bytes(found)

    return load


def recent_changes(tenant: Tenant, state: PageState) -> RecentChanges:
    """The newest ``CONFIGURE_HISTORY_ON_PAGE`` changes: those read with the state, or (on
    PostgreSQL) their digest with a loader for the rows; no query when there are none.

    The SQL is the ORM's own, compiled once per database and limit.
    """
    limit = int(connect_settings.CONFIGURE_HISTORY_ON_PAGE)
    alias = router.db_for_read(ConfigurationChange)
    if not state.has_history or limit <= 0:
        return RecentChanges(alias, [], [])
    sql, tenant_at, fields = _compiled_history(alias, limit)
    if state.history is not None:
        return RecentChanges(alias, fields, list(state.history))  # read with the state
    if state.history_digest is not None:
        load = _rows_and_digest(alias, tenant.pk, limit)
        return RecentChanges(alias, fields, None, digest=state.history_digest, load=load)
    connection = connections[alias]
    params: list[Any] = []
    params.insert(tenant_at, tenant.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return RecentChanges(alias, fields, cursor.fetchall())


def mirror_status(tenant: Tenant) -> dict[str, Any]:
    """``configuration.mirror_changes``, without a query when nothing is mirrored."""
    if not mirror.specs_for(str(connect_settings.CONFIGURE_SETTING_KEY)):
        return {}
    return mirror_changes(tenant)
