"""Calls from the emulated Forge platform to the app's remote: invocations and events.

Every call carries a FIT (``Authorization: Bearer``), the app's system token
(``x-forge-oauth-system``), B3 trace headers and, for a user in session, a user token.
Events are POSTed with a 5 s budget; a non-2xx answer or no answer is retried (the
platform tries 4 times, 60 s apart), each retry wrapped with a ``retryContext``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

__all__ = [
    "EVENT_TYPES",
    "RETRY_REASON_ERROR",
    "RETRY_REASON_TIMEOUT",
    "ForgeDelivery",
    "deliver_event",
    "forge_headers",
]

EVENT_TYPES = ("avi:forge:installed:app", "avi:forge:upgraded:app")
#: ``retryContext.retryReason`` values; Atlassian documents the field, not a closed list,
#: so apps should not branch on them.
RETRY_REASON_TIMEOUT = "FUNCTION_TIMEOUT"
RETRY_REASON_ERROR = "FUNCTION_ERROR"
MAX_EXCERPT = 500
REDACTED = "[token redacted]"


@dataclass(frozen=True)
class ForgeDelivery:
    """One attempt at delivering a Forge event to the remote."""

    event_type: str
    event_id: str
    url: str
    attempt: int
    status: int | None
    ok: bool
    detail: str
    #: The FIT's ``jti``: a new one on every attempt, while ``event_id`` stays.
    jti: str
    #: The body sent, e.g. ``{"payload": {...}, "retryContext": {...}}`` on a retry.
    body: dict[str, Any] = field(repr=False)
    at: float = field(default_factory=time.time)

    @property
    def wrapped(self) -> bool:
        return "payload" in self.body

    def to_json(self) -> dict[str, Any]:
        return {
            "eventType": self.event_type,
            "eventId": self.event_id,
            "url": self.url,
            "attempt": self.attempt,
            "status": self.status,
            "ok": self.ok,
            "detail": self.detail,
            "jti": self.jti,
            "wrapped": self.wrapped,
            "retryContext": self.body.get("retryContext"),
            "at": self.at,
        }


def forge_headers(
    fit: str, *, system_token: str | None = None, user_token: str | None = None
) -> dict[str, str]:
    """The headers of a Forge Remote call (PROTOCOL.md section 7)."""
    headers = {
        "Authorization": f"Bearer {fit}",
        "Accept": "application/json",
        # B3 propagation: a 128-bit trace id, a 64-bit span id, lower-case hex.
        "x-b3-traceid": secrets.token_hex(16),
        "x-b3-spanid": secrets.token_hex(8),
    }
    if system_token:
        headers["x-forge-oauth-system"] = system_token
    if user_token:
        headers["x-forge-oauth-user"] = user_token
    return headers


def _excerpt(raw: bytes, tokens: list[str]) -> str:
    text = raw[:MAX_EXCERPT].decode("utf-8", errors="replace").strip()
    # An app that echoes its request must not put a token on the admin page or in a log.
    for token in tokens:
        if token:
            text = text.replace(token, REDACTED)
    return text


def _post_once(
    session: requests.Session,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    timeout: float,
) -> tuple[int | None, str]:
    secrets_sent = [headers["Authorization"][len("Bearer ") :]]
    secrets_sent.append(headers.get("x-forge-oauth-system", ""))
    try:
        response = session.post(
            url,
            data=json.dumps(body).encode("utf-8"),
            headers={**headers, "Content-Type": "application/json"},
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        )
        try:
            raw = response.raw.read(MAX_EXCERPT, decode_content=True)
        finally:
            response.close()
    except requests.Timeout:
        return None, f"no answer within {timeout:g} s"
    except (requests.RequestException, OSError) as err:
        return None, f"could not connect ({type(err).__name__})"
    excerpt = _excerpt(raw, secrets_sent)
    return response.status_code, f"HTTP {response.status_code}" + (
        f": {excerpt}" if excerpt else ""
    )


def deliver_event(
    session: requests.Session,
    url: str,
    event: Mapping[str, Any],
    *,
    mint: Callable[[], tuple[str, str]],
    system_token: Callable[[], str],
    wrapped: bool,
    attempts: int,
    retry_delay: float,
    timeout: float,
    stopping: threading.Event,
) -> list[ForgeDelivery]:
    """POST ``event`` until a 2xx, at most ``attempts`` times; ``mint`` gives a fresh
    ``(fit, jti)`` per attempt. Waits between attempts end early when ``stopping`` is set."""
    if not 1 <= attempts <= 10:
        raise ValueError("attempts must be 1-10")
    if retry_delay < 0 or timeout <= 0:
        raise ValueError("retry_delay must be >= 0 and timeout > 0")
    results: list[ForgeDelivery] = []
    payload = dict(event)
    for attempt in range(1, attempts + 1):
        if results and stopping.wait(retry_delay):
            break
        if results:
            previous = results[-1]
            reason = RETRY_REASON_TIMEOUT if previous.status is None else RETRY_REASON_ERROR
            body: dict[str, Any] = {
                "payload": payload,
                "retryContext": {"retryCount": attempt - 1, "retryReason": reason},
            }
        else:
            body = {"payload": payload} if wrapped else payload
        fit, jti = mint()
        headers = forge_headers(fit, system_token=system_token())
        status, detail = _post_once(session, url, body, headers, timeout)
        ok = status is not None and 200 <= status < 300
        results.append(
            ForgeDelivery(
                event_type=str(event.get("eventType")),
                event_id=str(event.get("id")),
                url=url,
                attempt=attempt,
                status=status,
                ok=ok,
                detail=detail,
                jti=jti,
                body=body,
            )
        )
        if ok:
            break
    return results
