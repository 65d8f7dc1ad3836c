"""The app properties REST API (PROTOCOL.md section 5), with every status, body and limit.

``{base}/rest/atlassian-connect/1/addons/{addonKey}/properties[/{propertyKey}]``; only the app
``addonKey`` itself may call it, with an HS256 token signed with its current shared secret.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from .replies import Reply, error, json_reply
from .state import HostState, Installation
from .tokens import AppTokenError, check_app_token

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_PROPERTIES",
    "MAX_VALUE_LENGTH",
    "RESERVED_KEY",
    "PropertiesApi",
    "java_length",
]

RESERVED_KEY = "connect_client_key_019cdff3-8bfb-71fe-9628-875b700aebb8"
MAX_KEY_LENGTH = 127
MAX_VALUE_LENGTH = 32768
MAX_PROPERTIES = 100
UNAUTHENTICATED = "Client must be authenticated to access this resource."
KEY_TOO_LONG = f"The property key cannot be longer than {MAX_KEY_LENGTH} characters."


def java_length(text: str) -> int:
    """Length as the product (Java) counts it: UTF-16 code units, so an emoji counts 2."""
    return len(text.encode("utf-16-le")) // 2


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and the product) does not.
    raise ValueError(f"{name} is not JSON")


def parse_json_value(body: bytes) -> tuple[Any, str | None]:
    """The parsed value, or ``(None, reason)`` when the body is not a valid property value."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None, "The property value is not valid JSON."
    if not text.strip():
        return None, "The property value cannot be empty."
    if java_length(text) > MAX_VALUE_LENGTH:
        return None, f"The property value cannot be longer than {MAX_VALUE_LENGTH} characters."
    try:
        return json.loads(text, parse_constant=_reject_constant), None
    except (ValueError, RecursionError):
        return None, "The property value is not valid JSON."


class PropertiesApi:
    """Answers the REST calls for one emulated site."""

    def __init__(self, state: HostState, *, base_url: str, context_path: str) -> None:
        self.state = state
        self.base_url = base_url.rstrip("/")
        self.context_path = context_path

    def self_link(self, addon_key: str, key: str | None = None) -> str:
        url = f"{self.base_url}/rest/atlassian-connect/1/addons/{quote(addon_key, safe='')}"
        url += "/properties"
        return url if key is None else f"{url}/{quote(key, safe='')}"

    def authenticate(
        self, addon_key: str, *, method: str, raw_path: str, query: str, token: str | None
    ) -> Installation:
        """The calling app's installation; :class:`AppTokenError` when it is not the app."""
        if not token:
            raise AppTokenError("No token: send 'Authorization: JWT <token>'.")
        with self.state.lock:
            installation = self.state.installations.get(addon_key)
            if installation is None:
                raise AppTokenError("The app is not installed on this site.")
            if not installation.enabled:
                raise AppTokenError("The app is disabled on this site.")
            secret = installation.shared_secret
        check_app_token(
            token,
            secret,
            app_key=addon_key,
            client_key=self.state.client_key,
            method=method,
            raw_path=raw_path,
            query=query,
            product_context_path=self.context_path,
        )
        return installation

    def handle(
        self,
        method: str,
        addon_key: str,
        key: str | None,
        *,
        raw_path: str,
        query: str,
        token: str | None,
        body: bytes,
    ) -> Reply:
        allowed = ("GET",) if key is None else ("GET", "PUT", "DELETE")
        if method not in allowed:
            allow = {"Allow": ", ".join(allowed)}
            return error(405, f"Method {method} is not allowed here.", allow)
        try:
            self.authenticate(addon_key, method=method, raw_path=raw_path, query=query, token=token)
        except AppTokenError as err:
            return error(401, f"{UNAUTHENTICATED} {err.reason}", {"WWW-Authenticate": "JWT"})
        if key is None:
            return self._list(addon_key)
        if java_length(key) > MAX_KEY_LENGTH:
            return error(400, KEY_TOO_LONG)
        if method == "GET":
            return self._get(addon_key, key)
        if key == RESERVED_KEY:
            return error(403, f"The property {RESERVED_KEY} is read-only.")
        if method == "PUT":
            return self._put(addon_key, key, body)
        return self._delete(addon_key, key)

    def _list(self, addon_key: str) -> Reply:
        with self.state.lock:
            keys = sorted(self.state.properties.get(addon_key, {}))
        return json_reply(
            200, {"keys": [{"key": k, "self": self.self_link(addon_key, k)} for k in keys]}
        )

    def _get(self, addon_key: str, key: str) -> Reply:
        with self.state.lock:
            if key == RESERVED_KEY:
                value: Any = self.state.client_key
            else:
                properties = self.state.properties.get(addon_key, {})
                if key not in properties:
                    return error(404, f"Property with key not found: {key}")
                value = properties[key]
        return json_reply(200, {"key": key, "value": value, "self": self.self_link(addon_key, key)})

    def _put(self, addon_key: str, key: str, body: bytes) -> Reply:
        value, problem = parse_json_value(body)
        if problem:
            return error(400, problem)
        with self.state.lock:
            properties = self.state.app_properties(addon_key)
            created = key not in properties
            if created and len(properties) >= MAX_PROPERTIES:
                return error(400, f"An app can store at most {MAX_PROPERTIES} properties.")
            properties[key] = value
            self.state.save()
        if created:
            return json_reply(201, {"message": "Property created.", "statusCode": 201})
        return json_reply(200, {"message": "Property updated.", "statusCode": 200})

    def _delete(self, addon_key: str, key: str) -> Reply:
        with self.state.lock:
            properties = self.state.properties.get(addon_key, {})
            if key not in properties:
                return error(404, f"Property with key not found: {key}")
            del properties[key]
            self.state.save()
        return Reply(204)
