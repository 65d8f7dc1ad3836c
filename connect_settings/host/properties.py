"""The app properties REST API (PROTOCOL.md section 5), with every status, body and limit.

``{base}/rest/atlassian-connect/1/addons/{addonKey}/properties[/{propertyKey}]``; only the app
``addonKey`` itself may call it, with an HS256 token signed with its current shared secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
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
    "properties_route",
]

RESERVED_KEY = "connect_client_key_019cdff3-8bfb-71fe-9628-875b700aebb8"
MAX_KEY_LENGTH = 127
MAX_VALUE_LENGTH = 32768
MAX_PROPERTIES = 100
UNAUTHENTICATED = "Client must be authenticated to access this resource."
KEY_TOO_LONG = f"The property key cannot be longer than {MAX_KEY_LENGTH} characters."


def properties_route(context_path: str) -> re.Pattern[str]:
    """The API's paths under a product base path: groups ``app`` and ``key`` (raw)."""
    return re.compile(
        re.escape(context_path)
        + r"/rest/atlassian-connect/1/addons/(?P<app>[^/]+)/properties(?:/(?P<key>[^/]*))?/?"
    )


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

    def self_link(self, addon_key: str, key: str | None = None, base_url: str | None = None) -> str:
        base = (base_url or self.base_url).rstrip("/")
        url = f"{base}/rest/atlassian-connect/1/addons/{quote(addon_key, safe='')}/properties"
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
        """A call on the product's own route, authenticated by the app's Connect JWT."""

        def authenticate() -> None:
            self.authenticate(addon_key, method=method, raw_path=raw_path, query=query, token=token)

        return self.serve(method, addon_key, key, body=body, authenticate=authenticate)

    def serve(
        self,
        method: str,
        addon_key: str,
        key: str | None,
        *,
        body: bytes,
        authenticate: Callable[[], object],
        base_url: str | None = None,
        scheme: str = "JWT",
    ) -> Reply:
        """The API itself, behind any authentication: ``authenticate`` raises
        :class:`AppTokenError` to refuse (401). ``base_url`` is where ``self`` links point
        (the Forge route serves the same properties under ``apiBaseUrl``)."""
        allowed = ("GET",) if key is None else ("GET", "PUT", "DELETE")
        if method not in allowed:
            allow = {"Allow": ", ".join(allowed)}
            return error(405, f"Method {method} is not allowed here.", allow)
        try:
            authenticate()
        except AppTokenError as err:
            return error(401, f"{UNAUTHENTICATED} {err.reason}", {"WWW-Authenticate": scheme})
        if key is None:
            return self._list(addon_key, base_url)
        if java_length(key) > MAX_KEY_LENGTH:
            return error(400, KEY_TOO_LONG)
        if method == "GET":
            return self._get(addon_key, key, base_url)
        if key == RESERVED_KEY:
            return error(403, f"The property {RESERVED_KEY} is read-only.")
        if method == "PUT":
            return self._put(addon_key, key, body)
        return self._delete(addon_key, key)

    def _list(self, addon_key: str, base_url: str | None) -> Reply:
        with self.state.lock:
            keys = sorted(self.state.properties.get(addon_key, {}))
        links = [{"key": k, "self": self.self_link(addon_key, k, base_url)} for k in keys]
        return json_reply(200, {"keys": links})

    def _get(self, addon_key: str, key: str, base_url: str | None) -> Reply:
        with self.state.lock:
            if key == RESERVED_KEY:
                value: Any = self.state.client_key
            else:
                properties = self.state.properties.get(addon_key, {})
                if key not in properties:
                    return error(404, f"Property with key not found: {key}")
                value = properties[key]
        link = self.self_link(addon_key, key, base_url)
        return json_reply(200, {"key": key, "value": value, "self": link})

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
