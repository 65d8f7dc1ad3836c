"""Validation of lifecycle request bodies (the install payload of PROTOCOL.md section 3)."""

from __future__ import annotations

import fnmatch
import json
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from .conf import connect_settings
from .exceptions import BadRequest, ConnectError, Forbidden

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_OPTIONAL_TEXT = (
    "key",
    "displayUrl",
    "displayUrlServicedeskHelpCenter",
    "productType",
    "description",
    "serverVersion",
    "pluginsVersion",
    "serviceEntitlementNumber",
    "entitlementId",
    "entitlementNumber",
    "oauthClientId",
    "installationId",
    "eventType",
    "publicKey",
)


class UnsupportedMediaType(ConnectError):
    code = "unsupported_media_type"
    status = 415


class InstallPayloadForm(forms.Form):
    """Lengths and URL shapes; types are checked before (a form would stringify a list).

    :func:`validate_install_payload` runs its fields' ``clean`` directly: the form has no
    form-level validation, and an instance would deep-copy every field on every install.
    """

    clientKey = forms.CharField(max_length=255, strip=False)
    sharedSecret = forms.CharField(max_length=1024, strip=False)
    baseUrl = forms.URLField(max_length=512, assume_scheme="https")
    displayUrl = forms.URLField(max_length=512, required=False, assume_scheme="https")
    displayUrlServicedeskHelpCenter = forms.URLField(
        max_length=512, required=False, assume_scheme="https"
    )
    key = forms.CharField(max_length=255, required=False)
    productType = forms.CharField(max_length=32, required=False)
    description = forms.CharField(max_length=10_000, required=False)
    serverVersion = forms.CharField(max_length=64, required=False)
    pluginsVersion = forms.CharField(max_length=64, required=False)
    serviceEntitlementNumber = forms.CharField(max_length=255, required=False)
    entitlementId = forms.CharField(max_length=255, required=False)
    entitlementNumber = forms.CharField(max_length=255, required=False)
    oauthClientId = forms.CharField(max_length=255, required=False)
    installationId = forms.CharField(max_length=255, required=False)


def read_json_body(request: HttpRequest) -> dict[str, Any]:
    """The body as a JSON object, within MAX_LIFECYCLE_BODY; BadRequest otherwise."""
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType("The body must be application/json.")
    limit = int(connect_settings.MAX_LIFECYCLE_BODY)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadRequest("Content-Length is not a number.", code="malformed_body") from None
    if declared > limit:
        raise BadRequest(f"The body is larger than {limit} bytes.", code="body_too_large")
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise BadRequest(f"The body is larger than {limit} bytes.", code="body_too_large")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("The body is not valid JSON.", code="malformed_body") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.", code="malformed_body")
    return data


def validate_install_payload(data: dict[str, Any]) -> dict[str, Any]:
    """The cleaned payload, or BadRequest naming the first bad field (never its value)."""
    for name in ("clientKey", "sharedSecret", "baseUrl"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise BadRequest(f"The body has no '{name}'.", code="missing_field")
    for name in _OPTIONAL_TEXT:
        if data.get(name) is not None and not isinstance(data[name], str):
            raise BadRequest(f"'{name}' must be a string.", code="invalid_field")
    cleaned: dict[str, Any] = {}
    for name, field in InstallPayloadForm.base_fields.items():  # in order: the first bad one
        try:
            value = field.clean(data.get(name))
        except ValidationError:
            raise BadRequest(f"'{name}' is not valid.", code="invalid_field") from None
        if value not in ("", None):
            cleaned[name] = value
    for name in ("baseUrl", "displayUrl", "displayUrlServicedeskHelpCenter"):
        if name in cleaned:
            cleaned[name] = cleaned[name].rstrip("/")
    app_key = cleaned.get("key")
    if app_key and connect_settings.APP_KEY and app_key != connect_settings.APP_KEY:
        raise BadRequest("The payload is for another app key.", code="wrong_app_key")
    return cleaned


def host_allowed(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        return False
    if parts.scheme != "https" and host not in LOOPBACK_HOSTS:
        return False
    return any(fnmatch.fnmatchcase(host, str(p).lower()) for p in connect_settings.HOST_ALLOWLIST)


def check_host_allowed(url: str) -> None:
    if not host_allowed(url):
        raise Forbidden("The tenant's base URL is not an allowed host.", code="host_not_allowed")
