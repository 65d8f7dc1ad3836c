"""Token errors with stable codes; the Django layer turns them into 401/503 answers."""

from __future__ import annotations


class TokenError(Exception):
    """A token failed verification. ``code`` is stable and safe to show to callers.

    The message never contains the token, its claims or any secret.
    """

    code = "invalid_token"
    status = 401

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(message or self.code.replace("_", " "))

    @property
    def message(self) -> str:
        return str(self.args[0])


class KeyUnavailable(TokenError):
    """No key server could be reached: the caller should retry later (503)."""

    code = "install_key_unavailable"
    status = 503
