"""A tenant's app properties (PROTOCOL.md section 5), with the host's limits checked first.

Everything the host would refuse is refused here, before any request: key length, value
size and JSON validity, the reserved clientKey property, and the 100-properties ceiling.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from .client import HostClient, HostError
from .conf import connect_settings
from .exceptions import ConnectError
from .models import Tenant

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_PROPERTIES",
    "MAX_VALUE_LENGTH",
    "RESERVED_KEY",
    "AppProperties",
    "PropertyLimitError",
    "check_key",
    "serialise_value",
]

MAX_KEY_LENGTH = 127
MAX_VALUE_LENGTH = 32768
MAX_PROPERTIES = 100
#: Read-only property whose value is the tenant's Connect clientKey (Forge migration aid).
RESERVED_KEY = "connect_client_key_019cdff3-8bfb-71fe-9628-875b700aebb8"


class PropertyLimitError(ConnectError, ValueError):
    """Refused locally: the host would refuse it too. Nothing was sent."""

    code = "property_limit"
    status = 400


def _java_length(text: str) -> int:
    # The host counts UTF-16 code units (Java String.length()).
    return len(text.encode("utf-16-le", errors="surrogatepass")) // 2


def check_key(key: str, *, writing: bool = True) -> str:
    if not isinstance(key, str) or not key:
        raise PropertyLimitError("A property key must be a non-empty string.")
    if _java_length(key) > MAX_KEY_LENGTH:
        raise PropertyLimitError(f"A property key is at most {MAX_KEY_LENGTH} characters.")
    if writing and key == RESERVED_KEY:
        raise PropertyLimitError("The reserved clientKey property is read-only.")
    return key


def serialise_value(value: Any) -> str:
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as err:
        raise PropertyLimitError(f"A property value must be JSON: {err}") from err
    if _java_length(text) > MAX_VALUE_LENGTH:
        raise PropertyLimitError(
            f"A property value is at most {MAX_VALUE_LENGTH} characters of JSON."
        )
    return text


class AppProperties:
    """``list``, ``get``, ``put``, ``delete`` for one tenant's properties of our app."""

    def __init__(self, tenant: Tenant | None, client: HostClient | None = None) -> None:
        if client is None and tenant is None:
            raise ValueError("AppProperties needs a tenant or a client")
        self.tenant = tenant
        self.client = client or HostClient(tenant)  # type: ignore[arg-type]
        app_key = quote(connect_settings.APP_KEY, safe="")
        self.base = f"/rest/atlassian-connect/1/addons/{app_key}/properties"

    def _path(self, key: str) -> str:
        return f"{self.base}/{quote(key, safe='')}"

    def list(self) -> list[str]:
        data = self.client.get(self.base).json()
        return [item["key"] for item in data.get("keys", []) if isinstance(item, dict)]

    def get(self, key: str, default: Any = None) -> Any:
        check_key(key, writing=False)
        try:
            response = self.client.get(self._path(key))
        except HostError as err:
            if err.status_code == 404:
                return default
            raise
        # Values read back are untrusted (anyone acting as the app can write them): JSON only.
        return response.json().get("value", default)

    def put(self, key: str, value: Any, *, known_keys: set[str] | None = None) -> bool:
        """Store ``value``; True when the property was created. ``known_keys`` (the host's
        current keys, if the caller has them) saves the listing used for the 100 limit."""
        check_key(key)
        body = serialise_value(value)
        existing = set(self.list()) if known_keys is None else known_keys
        if key not in existing and len(existing) >= MAX_PROPERTIES:
            raise PropertyLimitError(
                f"The host keeps at most {MAX_PROPERTIES} properties per app; "
                "delete one before adding another."
            )
        response = self.client.put(
            self._path(key), data=body.encode(), headers={"Content-Type": "application/json"}
        )
        return response.status_code == 201

    def delete(self, key: str) -> bool:
        """True when a property was deleted, False when there was none."""
        check_key(key)
        try:
            self.client.delete(self._path(key))
        except HostError as err:
            if err.status_code == 404:
                return False
            raise
        return True
