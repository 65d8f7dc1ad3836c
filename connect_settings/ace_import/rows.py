"""From one tenant's raw ACE rows to what can be imported, and why the rest cannot.

Values are decoded the way ACE reads them back (``lib/store/utils.js`` ``getAsObject``):
the stored JSON is parsed, and a JSON *string* that itself parses as JSON is returned parsed
(apps that stored ``JSON.stringify(obj)`` got ``obj`` back from ``addon.settings.get``), so
the imported value is the one the app saw. Nothing here prints a value: reasons name rows,
keys and fields only.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection

from ..exceptions import ConnectError, SettingValueError
from ..payloads import host_allowed, validate_install_payload
from ..store import check_key, check_value
from .report import ImportReport
from .source import CLIENT_INFO, AceRow

#: ACE's OAuth 2.0 cache (``lib/internal/oauth2.js``): ``bearer:<md5>`` -> {token, expiresAt}.
#: Short-lived user credentials, not settings: never copied.
BEARER_CACHE_KEY = re.compile(r"bearer:[0-9a-f]{32}")

_EPOCH = datetime.min.replace(tzinfo=UTC)


class RowError(ValueError):
    """Why a row cannot be imported (safe to print: no value in it)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # json accepts NaN/Infinity; JSON.parse does not


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def decode_value(raw: Any) -> Any:
    """The value ACE's ``settings.get`` returns for a stored ``val``; RowError if unreadable."""
    if raw is None:
        return None  # SQL NULL: ACE stored null
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float):
        # SQLite's NUMERIC affinity turns the JSON text 5 into the integer 5.
        if isinstance(raw, float) and not math.isfinite(raw):
            raise RowError("invalid JSON: a non-finite number")
        return raw
    if isinstance(raw, bytes | memoryview):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise RowError("invalid JSON: the stored bytes are not UTF-8 text") from None
    if not isinstance(raw, str):
        raise RowError(f"invalid JSON: unsupported storage type {type(raw).__name__}")
    try:
        value = _loads(raw)
    except json.JSONDecodeError as err:
        # err.msg and the position only: the document itself may hold a secret.
        raise RowError(f"invalid JSON: {err.msg} (line {err.lineno}, column {err.colno})") from None
    except (ValueError, RecursionError) as err:
        raise RowError(f"invalid JSON: {err}") from None
    if isinstance(value, str):
        try:
            value = _loads(value)
        except (ValueError, RecursionError):
            pass  # a plain string stays a string, as in getAsObject
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def check_storable(key: str, value: Any) -> None:
    """What this database refuses, as a row error instead of a failed tenant transaction."""
    check_key(key)
    check_value(value)
    # PostgreSQL's text and jsonb cannot hold U+0000, which JSON and SQLite allow.
    if connection.vendor == "postgresql" and (_has_nul(key) or _has_nul(value)):
        raise RowError("PostgreSQL cannot store the character U+0000 (in the key or value)")


@dataclass(frozen=True)
class AceSetting:
    row: AceRow
    value: Any


@dataclass
class AceTenant:
    """One clientKey's importable data: the cleaned install payload and its settings."""

    client_key: str
    info_row: AceRow
    payload: dict[str, Any]
    settings: dict[str, AceSetting] = field(default_factory=dict)

    @property
    def shared_secret(self) -> str:
        return str(self.payload["sharedSecret"])


def _newest_first(rows: list[AceRow]) -> list[AceRow]:
    # Newest wins: the latest updatedAt when the table has one, then the highest id (the
    # row inserted last).
    return sorted(
        rows, key=lambda r: (r.updated_at is not None, r.updated_at or _EPOCH, r.id), reverse=True
    )


def _payload(client_key: str, row: AceRow) -> dict[str, Any]:
    """The clientInfo row as a cleaned install payload, or RowError."""
    data = decode_value(row.raw)
    if not isinstance(data, dict):
        raise RowError("clientInfo is not a JSON object")
    for name in ("clientKey", "sharedSecret", "baseUrl"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise RowError(f"clientInfo has no {name!r}")
    if data["clientKey"] != client_key:
        raise RowError("clientInfo's clientKey differs from the row's clientKey")
    try:
        # The same checks as a signed install: types, lengths, URL shapes, our app key.
        cleaned = validate_install_payload(data)
    except ConnectError as err:
        raise RowError(f"clientInfo: {err.message}") from None
    if not host_allowed(cleaned["baseUrl"]):
        raise RowError(
            f"baseUrl {cleaned['baseUrl']} is not an allowed host (HOST_ALLOWLIST, https)"
        )
    return cleaned


def read_tenant(
    client_key: str | None, rows: list[AceRow], report: ImportReport
) -> AceTenant | None:
    """Sort one clientKey's rows into an AceTenant; every row left out is reported."""
    if not isinstance(client_key, str) or not client_key:
        for row in rows:
            report.failed(row, "the row has no clientKey")
        return None

    by_key: dict[str, list[AceRow]] = {}
    for row in rows:
        if not isinstance(row.key, str) or not row.key:
            report.failed(row, "the row has no key")
            continue
        by_key.setdefault(row.key, []).append(row)

    newest: dict[str, AceRow] = {}
    for key, candidates in by_key.items():
        winner, *older = _newest_first(candidates)
        newest[key] = winner
        for row in older:
            report.duplicate(row, winner)

    info_row = newest.pop(CLIENT_INFO, None)
    if info_row is None:
        for row in newest.values():
            report.failed(row, "no clientInfo row for this clientKey (a tenant ACE does not know)")
        return None
    try:
        payload = _payload(client_key, info_row)
    except RowError as err:
        report.failed(info_row, str(err))
        for row in newest.values():
            report.failed(row, f"its tenant was not imported (clientInfo row {info_row.id})")
        return None

    tenant = AceTenant(client_key=client_key, info_row=info_row, payload=payload)
    for key, row in sorted(newest.items(), key=lambda item: item[1].id):
        if BEARER_CACHE_KEY.fullmatch(key):
            report.ignored(row, "ACE's cached OAuth 2.0 bearer token (a credential, not a setting)")
            continue
        try:
            value = decode_value(row.raw)
            check_storable(key, value)
        except (RowError, SettingValueError) as err:
            report.failed(row, str(err))
            continue
        tenant.settings[key] = AceSetting(row=row, value=value)
    return tenant
