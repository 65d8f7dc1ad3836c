"""A small raw HTTP/1.1 client over http.client: exact request targets, headers and bytes.

Hostile requests need control that ``requests`` takes away (a request target sent exactly as
written, duplicate headers, a body that is not UTF-8); the load generator wants one
keep-alive connection per thread. Every call has a timeout.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Connection", "Response", "request"]


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    error: str = ""
    elapsed: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Connection:
    """One keep-alive connection to ``base_url``, reopened after any failure."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]] | dict[str, str] | None = None,
        body: bytes | None = None,
        sent: Any = None,
    ) -> Response:
        """``sent`` (a ``threading.Event``) is set once the request is on the wire, before
        the answer is read: another request can then be sent while this one is in flight."""
        import time

        items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        started = time.monotonic()
        try:
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            conn = self._conn
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            names = {k.lower() for k, _ in items}
            if "host" not in names:
                conn.putheader("Host", f"{self.host}:{self.port}")
            for key, value in items:
                conn.putheader(key, value)
            if body is not None and "content-length" not in names:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            if sent is not None:
                sent.set()
            answer = conn.getresponse()
            data = answer.read()
            response = Response(answer.status, answer.getheaders(), data)
            if answer.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as err:
            self.close()
            response = Response(0, [], b"", error=f"{type(err).__name__}: {err}")
        response.elapsed = time.monotonic() - started
        return response


def request(
    base_url: str,
    method: str,
    target: str,
    headers: list[tuple[str, str]] | dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> Response:
    """One request on a fresh connection."""
    conn = Connection(base_url, timeout)
    try:
        return conn.request(method, target, headers, body)
    finally:
        conn.close()
