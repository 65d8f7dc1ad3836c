"""What the configure page reads and renders, at the cost of one query and a cache lookup.

**Reading.** :func:`read_state` reads the tenant's stored values, the version row and whether
any history exists in one round trip (the page used to make four queries). The history rows
are read only when there are some, the mirror status only when something is mirrored.

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
of the change rows this request read (``configure_history.html`` is rendered with
``history`` only, like the fields with ``form`` and ``rows`` only: neither may depend on the
request). Each of its entries is cached too, keyed by its own row: after a save, the
section renders only the new entry again.
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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from django import forms
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import setting_changed
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.utils import timezone, translation
from django.utils.safestring import SafeString

from . import mirror
from .conf import connect_settings
from .configuration import mirror_changes
from .forms import build_form, describe_change, effective_values, field_rows, redact
from .lru import LRU
from .models import AddonSetting, Configuration, ConfigurationChange, Tenant

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


def _locale() -> tuple[str | None, str]:
    return translation.get_language(), timezone.get_current_timezone_name()


def form_part(
    form_class: type[forms.BaseForm],
    stored: Mapping[str, Any],
    stored_digest: bytes | None = None,
) -> FormPart:
    """The form part for ``stored``, from the cache when the same inputs were rendered before.

    ``stored_digest`` (``PageState.stored_digest``) saves re-encoding the values to hash them.
    """
    if settings.DEBUG or not getattr(form_class, "cache_rendering", True):
        return render_form_part(form_class, stored)
    key = ("form", form_class, stored_digest or digest(stored), *_locale())
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
) -> SafeString:
    """The history section rendered now; its entries from the entry cache when ``rows`` (the
    changes as the database returned them) are given."""
    keys: list[tuple[Any, ...] | None] = [None] * len(changes)
    if rows is not None:
        locale = _locale()
        keys = [("entry", form_class, row, *locale) for row in rows]
    history = [HistoryEntry(form_class, c, k) for c, k in zip(changes, keys, strict=True)]
    return SafeString(render_to_string(HISTORY_TEMPLATE, {"history": history}))


def history_part(form_class: type[forms.BaseForm], changes: RecentChanges) -> SafeString:
    """The history section for these changes, from the cache when it was rendered before.

    Keyed by every column of every change shown, as the database returned them (and the
    form, for its labels), so a change row edited or deleted in the database is a different
    key like a new one. A hit builds no model instance and decodes no JSON.
    """
    if settings.DEBUG or not getattr(form_class, "cache_rendering", True):
        return render_history_part(form_class, changes.instances)
    key = ("history", form_class, changes.rows, *_locale())
    try:
        part = _cache.get(key)
    except TypeError:  # a driver returned an unhashable column value: render, don't cache
        return render_history_part(form_class, changes.instances)
    if part is None:
        part = render_history_part(form_class, changes.instances, changes.rows)
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


#: The state query per (database alias, history limit), built once: quoting names and
#: compiling the history's SQL cost more than the query.
_state_sql_by_alias: dict[tuple[str, int], tuple[str, int | None]] = {}


def _state_sql(connection: BaseDatabaseWrapper, limit: int) -> tuple[str, int | None]:
    """(SQL, index of the history's tenant parameter or None) for :func:`read_state`."""
    found = _state_sql_by_alias.get((connection.alias, limit))
    if found is None:
        found = _state_sql_by_alias[(connection.alias, limit)] = _build_state_sql(connection, limit)
    return found


def _build_state_sql(connection: BaseDatabaseWrapper, limit: int) -> tuple[str, int | None]:
    def _column(model: type[Any], name: str) -> str:
        return connection.ops.quote_name(model._meta.get_field(name).column)

    def _table(model: type[Any]) -> str:
        return connection.ops.quote_name(model._meta.db_table)

    # Identifiers only come from the models, quoted; every value is a query parameter.
    tenant_id = _column(AddonSetting, "tenant")
    state = (
        f"(SELECT {_column(AddonSetting, 'value')} FROM {_table(AddonSetting)}"  # noqa: S608
        f" WHERE {tenant_id} = %s AND {_column(AddonSetting, 'key')} = %s),"
        f" (SELECT {_column(Configuration, 'version')} FROM {_table(Configuration)}"
        f" WHERE {_column(Configuration, 'tenant')} = %s),"
        f" (SELECT {_column(Configuration, 'updated_at')} FROM {_table(Configuration)}"
        f" WHERE {_column(Configuration, 'tenant')} = %s)"
    )
    suffix = connection.features.bare_select_suffix
    if limit <= 0:
        exists = (
            f"EXISTS (SELECT 1 FROM {_table(ConfigurationChange)}"  # noqa: S608
            f" WHERE {_column(ConfigurationChange, 'tenant')} = %s)"
        )
        return f"SELECT {state}, {exists}{suffix}", None
    # The newest changes in the same round trip: the state's one row joined to the ORM's own
    # history query (its ordering and limit), one output row per change, or one of NULLs.
    history, tenant_at, fields = _compiled_history(connection.alias, limit)
    columns = ", ".join(f"h.{connection.ops.quote_name(f.column)}" for f in fields)
    order = ", ".join(
        f"h.{_column(ConfigurationChange, name.lstrip('-'))}"
        + (" DESC" if name.startswith("-") else "")
        for name in ConfigurationChange._meta.ordering
    )
    sql = (
        f"SELECT {state}, {columns} FROM (SELECT 1 AS one{suffix}) one"  # noqa: S608
        f" LEFT JOIN ({history}) h ON 1 = 1 ORDER BY {order}"
    )
    return sql, 4 + tenant_at


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


def read_state(tenant: Tenant) -> PageState:
    """The page's state in one query (scalar subqueries, whatever exists), with the newest
    ``CONFIGURE_HISTORY_ON_PAGE`` changes.

    The same reads as ``configuration.stored_values`` and ``current_state``: the setting row
    under ``CONFIGURE_SETTING_KEY`` and the tenant's ``Configuration`` row, by tenant id only
    (no join with the tenant table).
    """
    key = str(connect_settings.CONFIGURE_SETTING_KEY)
    limit = int(connect_settings.CONFIGURE_HISTORY_ON_PAGE)
    # The three tables share a database: save_configuration writes them in one transaction.
    connection = connections[router.db_for_read(AddonSetting)]
    sql, history_tenant_at = _state_sql(connection, limit)
    params: list[Any] = [tenant.pk, key, tenant.pk, tenant.pk]
    history: tuple[tuple[Any, ...], ...] | None = None
    with connection.cursor() as cursor:
        if history_tenant_at is None:
            cursor.execute(sql, [*params, tenant.pk])
            value, version, updated_at, has_history = cursor.fetchone()
        else:
            params.insert(history_tenant_at, tenant.pk)
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            value, version, updated_at = rows[0][:3]
            # A change's primary key is never NULL: a row of NULLs means no history.
            history = tuple(row[3:] for row in rows if row[3] is not None)
            has_history = bool(history)
    stored = _from_db(connection, AddonSetting._meta.get_field("value"), value)
    updated = _from_db(connection, Configuration._meta.get_field("updated_at"), updated_at)
    return PageState(
        # Anything but an object (written by hand through store.set) counts as nothing stored.
        stored=stored if isinstance(stored, dict) else {},
        version=version or 0,
        updated_at=updated,
        has_history=bool(has_history),
        stored_digest=(
            hashlib.blake2b(value.encode(), digest_size=20).digest()
            if isinstance(value, str)
            else None
        ),
        history=history,
    )


#: The history query per (database alias, limit): compiled by the ORM once, executed after.
_history_sql: dict[tuple[str, int], tuple[str, int, list[Field[Any, Any]]]] = {}


def _compiled_history(alias: str, limit: int) -> tuple[str, int, list[Field[Any, Any]]]:
    found = _history_sql.get((alias, limit))
    if found is None:
        query = ConfigurationChange.objects.filter(tenant_id=-1)[:limit].query
        sql, params = query.get_compiler(using=alias).as_sql()
        fields = list(ConfigurationChange._meta.concrete_fields)
        found = _history_sql[(alias, limit)] = (sql, list(params).index(-1), fields)
    return found


class RecentChanges:
    """The newest changes as the database returned them (``rows``: hashable, the history
    cache's key) and, built on first use, as model instances."""

    def __init__(self, alias: str, fields: list[Field[Any, Any]], rows: list[tuple[Any, ...]]):
        self.alias = alias
        self.fields = fields
        self.rows = tuple(rows)

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


def recent_changes(tenant: Tenant, state: PageState) -> RecentChanges:
    """The newest ``CONFIGURE_HISTORY_ON_PAGE`` changes; no query when there are none.

    The SQL is the ORM's own, compiled once per database and limit.
    """
    limit = int(connect_settings.CONFIGURE_HISTORY_ON_PAGE)
    alias = router.db_for_read(ConfigurationChange)
    if not state.has_history or limit <= 0:
        return RecentChanges(alias, [], [])
    sql, tenant_at, fields = _compiled_history(alias, limit)
    if state.history is not None:
        return RecentChanges(alias, fields, list(state.history))  # read with the state
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
