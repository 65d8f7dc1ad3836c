"""Lifecycle callbacks to the app (``installed``, ``uninstalled``, ``enabled``, ``disabled``).

One POST per event with the install payload as JSON; the product does not follow redirects
and treats anything but 2xx as a failure, which for ``installed`` fails the installation
with the message the product shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests

__all__ = ["CallbackResult", "InstallError", "install_failure_message", "post_callback"]

#: How much of the app's answer is kept to show in an error.
MAX_EXCERPT = 2000
REDACTED = "[shared secret redacted]"


class InstallError(Exception):
    """The installation failed; the message is what the product shows the admin."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        self.status = status
        self.body = body
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class CallbackResult:
    url: str
    status: int | None
    body: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def detail(self) -> str:
        if self.error:
            return self.error
        return f"HTTP {self.status}" + (f": {self.body}" if self.body else "")


def _excerpt(raw: bytes, secret: str) -> str:
    text = raw[:MAX_EXCERPT].decode("utf-8", errors="replace").strip()
    # An app that echoes the request back must not make the secret reach a log or a page.
    return text.replace(secret, REDACTED) if secret else text


def post_callback(
    session: requests.Session,
    url: str,
    payload: dict[str, Any],
    token: str,
    *,
    timeout: float,
) -> CallbackResult:
    """POST one lifecycle event; never raises for what the app does."""
    secret = str(payload.get("sharedSecret", ""))
    try:
        response = session.post(
            url,
            data=json.dumps(payload).encode("utf-8"),
            headers={
                "Authorization": f"JWT {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        )
        try:
            body = response.raw.read(MAX_EXCERPT, decode_content=True)
        finally:
            response.close()
    except requests.Timeout:
        return CallbackResult(url, None, error=f"no answer within {timeout:g} s")
    except (requests.RequestException, OSError) as err:
        return CallbackResult(url, None, error=f"could not connect ({type(err).__name__})")
    return CallbackResult(url, response.status_code, _excerpt(body, secret))


def install_failure_message(result: CallbackResult) -> str:
    """The product's wording, with the app's status and answer."""
    if result.status is None:
        return (
            "Installation failed. The app host did not respond when we tried to contact it at "
            f'"{result.url}" during installation ({result.error}). Please try again later or '
            "contact the app vendor."
        )
    message = (
        f"Installation failed. The app host returned HTTP response code {result.status} when "
        f'we tried to contact it at "{result.url}" during installation. Please try again later '
        "or contact the app vendor."
    )
    if result.body:
        message += f"\nThe app host answered: {result.body}"
    return message
