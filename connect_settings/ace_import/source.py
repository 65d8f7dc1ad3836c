"""Reading atlassian-connect-express's sequelize store: the ``AddonSettings`` table.

ACE 11.5.3 (``lib/store/sequelize.js``) defines the model ``AddonSetting`` (table
``AddonSettings``) with ``id`` (autoincrement), ``clientKey``, ``key`` and ``val``
(``Sequelize.JSON``: ``json`` on PostgreSQL, text with NUMERIC affinity on SQLite), a
non-unique index on ``(clientKey, key)`` and ``timestamps: false``; older versions and
hand-made tables may carry sequelize's ``createdAt`` / ``updatedAt``, which are used when
present. The source is only ever read. PostgreSQL: one read-only REPEATABLE READ
transaction, so the count and the rows come from one snapshot, which blocks no writer.
SQLite (opened read-only): one short statement per batch, so a live ACE keeps writing; a
row written meanwhile is read if the paging has not passed it, and by the next run if not.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from django.utils.dateparse import parse_datetime

DEFAULT_TABLE = "AddonSettings"
REQUIRED_COLUMNS = ("id", "clientKey", "key", "val")
TIMESTAMP_COLUMNS = ("createdAt", "updatedAt")
POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "pgsql"})
#: The key under which ACE stores a tenant's install payload (``saveInstallation``).
CLIENT_INFO = "clientInfo"


class SourceError(Exception):
    """The ACE database cannot be read; the message never contains a password."""


@dataclass(frozen=True)
class AceRow:
    """One row of ACE's table, ``val`` still undecoded (see :mod:`.rows`)."""

    id: int
    client_key: str | None
    key: str | None
    #: Text from PostgreSQL (``val::text``); any SQLite storage class from SQLite.
    raw: Any
    created_at: datetime | None = None
    updated_at: datetime | None = None


class _Cursor(Protocol):
    description: Any

    def execute(self, query: Any, params: Sequence[Any] = ...) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchmany(self, size: int = ...) -> list[Any]: ...
    def fetchall(self) -> list[Any]: ...


def redact(url: str) -> str:
    """``url`` without its password (in the user info or a ``password=`` parameter)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # By hand, not urlunsplit(): that turns sqlite:////abs into sqlite://abs.
    end = min(
        [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0] or [len(rest)]
    )
    netloc, tail = rest[:end], rest[end:]
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    tail = re.sub(r"([?&]password=)[^&#]*", r"\1***", tail)
    return f"{scheme}://{netloc}{tail}"


def quote_table(name: str) -> str:
    """A double-quoted identifier (``schema.table`` allowed) for SQLite and PostgreSQL."""
    if not name or any(not part for part in name.split(".")):
        raise SourceError(f"{name!r} is not a table name.")
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split(".", 1))


def _timestamp(value: Any) -> datetime | None:
    """Sequelize's DATE: a datetime (PostgreSQL) or text like ``2024-01-02 03:04:05.678 +00:00``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed: datetime | None = value
    elif isinstance(value, int | float):
        parsed = datetime.fromtimestamp(value / 1000, tz=UTC)  # sequelize: epoch milliseconds
    else:
        try:
            parsed = parse_datetime(str(value).strip())
        except ValueError:
            parsed = None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # sequelize writes UTC unless told otherwise
    return parsed


class AceSource:
    """ACE's store behind a database URL: ``sqlite:///relative``, ``sqlite:////absolute``,
    or ``postgres://user:password@host:port/database?sslmode=...``.
    """

    def __init__(
        self,
        url: str,
        *,
        table: str = DEFAULT_TABLE,
        only: Sequence[str] = (),
        batch_size: int = 1000,
    ) -> None:
        if batch_size < 1:
            raise SourceError("The batch size must be at least 1.")
        self.url = url
        self.display_url = redact(url)
        self.table = table
        self.only = tuple(dict.fromkeys(only))
        self.batch_size = batch_size
        scheme = urlsplit(url).scheme.lower()
        if scheme == "sqlite":
            self.vendor = "sqlite"
        elif scheme in POSTGRES_SCHEMES:
            self.vendor = "postgresql"
        else:
            raise SourceError(
                f"Unsupported database URL {self.display_url!r}: use sqlite:///path or "
                "postgres://user@host:port/database."
            )
        self._mark = "?" if self.vendor == "sqlite" else "%s"
        self._conn: Any = None
        self.columns: tuple[str, ...] = ()

    def _error(self, what: str, err: Exception) -> SourceError:
        """A SourceError quoting the driver, with any password in its message blotted out."""
        message = str(err).strip()
        parts = urlsplit(self.url)
        secrets = [parts.password or ""]
        secrets += [v for k, v in parse_qsl(parts.query) if k == "password"]
        for secret in filter(None, secrets):
            message = message.replace(secret, "***").replace(unquote(secret), "***")
        return SourceError(f"{what} {self.display_url}: {message}")

    # --- connection -------------------------------------------------------------------------

    def __enter__(self) -> AceSource:
        self._conn = self._connect_sqlite() if self.vendor == "sqlite" else self._connect_pg()
        try:
            self.columns = self._read_columns()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()  # the snapshot transaction wrote nothing
            finally:
                self._conn.close()
                self._conn = None

    def _connect_sqlite(self) -> sqlite3.Connection:
        path = unquote(urlsplit(self.url).path)
        # sqlite:///x.db is relative, sqlite:////abs/x.db absolute (the dj-database-url rule).
        path = path[1:] if path.startswith("/") else path
        if not path or path == ":memory:":
            raise SourceError("The SQLite URL names no file: use sqlite:////path/to/ace.sqlite.")
        try:
            # mode=ro: never create an empty database for a mistyped path, never write.
            conn = sqlite3.connect(
                f"file:{quote(path)}?mode=ro", uri=True, isolation_level=None, timeout=30
            )
        except sqlite3.Error as err:
            raise self._error("Cannot open", err) from err
        return conn

    def _connect_pg(self) -> Any:
        try:
            import psycopg
        except ImportError as err:  # psycopg is optional: only the importer needs it
            raise SourceError(
                "Reading PostgreSQL needs psycopg: pip install 'psycopg[binary]'."
            ) from err
        try:
            conn = psycopg.connect(self.url, connect_timeout=10)
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
        except psycopg.Error as err:
            raise self._error("Cannot connect to", err) from err
        return conn

    def _cursor(self) -> _Cursor:
        cursor: _Cursor = self._conn.cursor()
        return cursor

    def _execute(self, cursor: _Cursor, sql: str, params: Sequence[Any] = ()) -> None:
        try:
            cursor.execute(sql, params)
        except Exception as err:
            if self.vendor == "postgresql":
                self._conn.rollback()
            raise self._error(f"Cannot read {self.table!r} at", err) from err

    def _read_columns(self) -> tuple[str, ...]:
        cursor = self._cursor()
        self._execute(cursor, f"SELECT * FROM {quote_table(self.table)} WHERE 1 = 0")  # noqa: S608
        columns = tuple(d[0] for d in cursor.description)
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise SourceError(
                f"{self.table!r} is not ACE's settings table: no column {', '.join(missing)} "
                f"(it has {', '.join(columns)})."
            )
        return columns

    # --- rows -------------------------------------------------------------------------------

    def _where(self) -> tuple[str, list[str]]:
        if not self.only:
            return "", []
        marks = ", ".join(self._mark for _ in self.only)
        return f' WHERE "clientKey" IN ({marks})', list(self.only)

    def count(self) -> int:
        where, params = self._where()
        cursor = self._cursor()
        self._execute(cursor, f"SELECT COUNT(*) FROM {quote_table(self.table)}{where}", params)  # noqa: S608
        return int(cursor.fetchone()[0])

    def _columns_sql(self) -> tuple[str, list[str]]:
        stamps = [c for c in TIMESTAMP_COLUMNS if c in self.columns]
        # Text on PostgreSQL whatever the column type (json, jsonb, or text in old ACEs), so
        # both databases go through the same decoder and invalid JSON in text is reported.
        val = '"val"::text' if self.vendor == "postgresql" else '"val"'
        return ", ".join(['"id"', '"clientKey"', '"key"', val, *(f'"{c}"' for c in stamps)]), stamps

    def _batches(self) -> Iterator[list[Any]]:
        select, _ = self._columns_sql()
        base = f"SELECT {select} FROM {quote_table(self.table)}"  # noqa: S608
        if self.vendor == "postgresql":
            where, params = self._where()
            # A server-side cursor in the snapshot: a million rows are never all in memory.
            cursor = self._conn.cursor(name="connect_import_ace")
            cursor.itersize = self.batch_size
            self._execute(cursor, f'{base}{where} ORDER BY "clientKey", "id"', params)
            while batch := cursor.fetchmany(self.batch_size):
                yield batch
            return
        # SQLite: each batch is a short statement of its own (keyset pagination), because an
        # open read would hold SQLite's SHARED lock for the whole import and make a live
        # ACE's writes fail with "database is locked". Rows without a clientKey (NULL, which
        # a row-value comparison cannot page over) come first, paged by id alone.
        if not self.only:
            last_id: int | None = None
            while True:
                after = "" if last_id is None else ' AND "id" > ?'
                params = ([] if last_id is None else [last_id]) + [self.batch_size]
                batch = self._fetch(
                    f'{base} WHERE "clientKey" IS NULL{after} ORDER BY "id" LIMIT ?', params
                )
                if not batch:
                    break
                yield batch
                last_id = batch[-1][0]
        last: tuple[str, int] | None = None
        while True:
            conditions, params = ['"clientKey" IS NOT NULL'], []
            if self.only:
                conditions.append(f'"clientKey" IN ({", ".join("?" for _ in self.only)})')
                params += list(self.only)
            if last is not None:
                conditions.append('("clientKey", "id") > (?, ?)')
                params += list(last)
            sql = f'{base} WHERE {" AND ".join(conditions)} ORDER BY "clientKey", "id" LIMIT ?'
            batch = self._fetch(sql, [*params, self.batch_size])
            if not batch:
                break
            yield batch
            last = (batch[-1][1], batch[-1][0])

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        cursor = self._cursor()
        self._execute(cursor, sql, params)
        return list(cursor.fetchall())

    def rows(self) -> Iterator[AceRow]:
        """Every row ordered by clientKey, then id; fetched ``batch_size`` at a time."""
        _, stamps = self._columns_sql()
        for batch in self._batches():
            for record in batch:
                extra = dict(zip(stamps, record[4:], strict=True))
                yield AceRow(
                    id=int(record[0]),
                    client_key=record[1],
                    key=record[2],
                    raw=record[3],
                    created_at=_timestamp(extra.get("createdAt")),
                    updated_at=_timestamp(extra.get("updatedAt")),
                )

    def tenants(self) -> Iterator[tuple[str | None, list[AceRow]]]:
        """Rows grouped by clientKey (one tenant's rows together; ``None`` for rows without)."""
        group: list[AceRow] = []
        for row in self.rows():
            if group and row.client_key != group[0].client_key:
                yield group[0].client_key, group
                group = []
            group.append(row)
        if group:
            yield group[0].client_key, group
