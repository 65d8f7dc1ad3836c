"""Support for the emulator's Forge tests: a fake Forge remote, FIT checks, ``/ex/`` calls.

The fake remote is a real 127.0.0.1 server that records every request and answers from a
script: a status, or :data:`HOLD` (keep the caller waiting until :meth:`FakeRemote.stop`, so
the caller's timeout fires; no sleeping anywhere).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt as pyjwt
import requests

from connect_settings.host import Emulator

#: A scripted answer: hold the request until the fake remote stops.
HOLD = -1
FIT_CLAIMS = ["iss", "aud", "iat", "nbf", "exp", "jti"]


@dataclass
class RemoteRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def fit(self) -> str:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        assert scheme == "Bearer", self.headers
        return token


class FakeRemote:
    """A Forge remote: answers 204 unless told otherwise by :meth:`script`."""

    def __init__(self) -> None:
        self.requests: list[RemoteRequest] = []
        self._script: deque[int] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        remote = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                remote._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> FakeRemote:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *answers: int) -> None:
        """The next requests' answers, in order (then 204 again)."""
        with self._lock:
            self._script.extend(answers)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        record = RemoteRequest(
            handler.command,
            handler.path,
            {k.lower(): v for k, v in handler.headers.items()},
            body,
        )
        with self._lock:
            self.requests.append(record)
            answer = self._script.popleft() if self._script else 204
        if answer == HOLD:
            # Bounded: stop() releases it; the caller has long given up by then.
            self._release.wait(30)
            answer = 204
        handler.send_response(answer)
        payload = b"" if answer == 204 else json.dumps({"status": answer}).encode()
        if payload:
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def verify_fit(emu: Emulator, token: str, **options: Any) -> dict[str, Any]:
    """Verify a FIT the way a careful remote does, with PyJWT's own JWKS client."""
    key = pyjwt.PyJWKClient(emu.forge_jwks_url, cache_keys=False).get_signing_key_from_jwt(token)
    return pyjwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=emu.forge_app_id,
        issuer="forge/invocation-token",
        options={"require": FIT_CLAIMS},
        **options,
    )


def forge_call(
    emu: Emulator,
    method: str,
    prop: str | None = None,
    body: str | bytes | None = None,
    *,
    token: str | None = None,
    sign: bool = True,
    url: str | None = None,
) -> requests.Response:
    """Call the app properties API under ``apiBaseUrl`` with the system token."""
    target = url or emu.forge_properties_url(prop)
    headers = {"Content-Type": "application/json"}
    if sign:
        headers["Authorization"] = f"Bearer {token or emu.system_token()}"
    data = body.encode("utf-8") if isinstance(body, str) else body
    return requests.request(method, target, data=data, headers=headers, timeout=10)
