"""Exceptions of connect_settings, under one root.

Each HTTP-facing error carries a stable ``code`` and an HTTP ``status``; messages are short,
safe to show and never contain a secret or a token.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from .jwt.errors import KeyUnavailable, TokenError

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "ConfigurationError",
    "ConnectError",
    "Forbidden",
    "KeyUnavailable",
    "SecretDecryptionError",
    "SettingValueError",
    "TokenError",
]


class ConnectError(Exception):
    """Root of every connect_settings error."""

    code = "error"
    status = 500

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(message or self.code.replace("_", " "))

    @property
    def message(self) -> str:
        return str(self.args[0])


class AuthenticationFailed(ConnectError):
    """401: the request's token (or its tenant) is not acceptable."""

    code = "authentication_failed"
    status = 401


class BadRequest(ConnectError):
    """400: the request body or parameters are malformed."""

    code = "bad_request"
    status = 400


class Forbidden(ConnectError):
    """403: authenticated, but not allowed (e.g. a host outside HOST_ALLOWLIST)."""

    code = "forbidden"
    status = 403


class ServiceUnavailable(ConnectError):
    """503: a dependency (key server, database) is down; the caller may retry."""

    code = "unavailable"
    status = 503


class SettingValueError(ConnectError, ValueError):
    """A setting value cannot be stored (not JSON-serialisable, key too long)."""

    code = "invalid_setting"
    status = 400


class SecretDecryptionError(ConnectError):
    """A stored secret does not decrypt with the configured keys (a configuration error)."""

    code = "secret_decryption_failed"
    status = 500


class ConfigurationError(ConnectError, ImproperlyConfigured):
    code = "improperly_configured"
