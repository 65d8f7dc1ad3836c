"""The emulator's HTTP server: a threaded ``http.server`` on 127.0.0.1, routing to the parts.

HTTP plumbing only: bounded body reading, the Host check, faults, routing, clean error
answers (a request that breaks anything gets a JSON 4xx/5xx, never a traceback), logging
with tokens redacted.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from .admin import render_admin
from .assets import ALL_JS, HOST_CSS, HOST_JS
from .control import PREFIX as CONTROL_PREFIX
from .control import handle_control
from .faults import Fault
from .forge import JWKS_PATH
from .forge_api import PREFIX as FORGE_API_PREFIX
from .forge_api import handle_forge_api, product_path
from .properties import properties_route
from .replies import Reply, error, json_reply

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = ["make_server"]

logger = logging.getLogger("connect_settings.host")

MAX_BODY = 1024 * 1024
_JWT_PARAM = re.compile(r"(?i)(jwt=)[^&\s]*")
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _redact(path: str) -> str:
    return _JWT_PARAM.sub(r"\1[redacted]", path)


def _iso_after(seconds: int) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _fault_reply(fault: Fault, status: int) -> Reply:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if status == 429:
        # The rate-limit headers of PROTOCOL.md section 6.
        headers.update(
            {
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-NearLimit": "true",
                "X-RateLimit-Reset": _iso_after(fault.retry_after or 1),
            }
        )
        return error(429, "Rate limit exceeded.", headers)
    return error(status, f"Injected fault: HTTP {status}.", headers)


class EmulatorHandler(BaseHTTPRequestHandler):
    emulator: Emulator
    properties_route: re.Pattern[str]
    allowed_hosts: frozenset[str]
    protocol_version = "HTTP/1.1"
    server_version = "connect-settings-host"
    # Headers and body go out in separate writes; with Nagle's algorithm on, keep-alive
    # clients would wait for a delayed ACK (~40 ms) on every request.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    # Plumbing ----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        try:
            body, problem = self._read_body()
            reply = problem or self._answer(body)
        except Exception:
            # The traceback goes to the log (which never sees secrets or tokens), not the wire.
            logger.exception("connect_host failed on %s %s", self.command, _redact(self.path))
            self.close_connection = True
            reply = error(500, "The emulator failed on this request; see its log.")
        if reply is not None:
            self._send(reply)

    def _answer(self, body: bytes) -> Reply | None:
        emu = self.emulator
        parts = urlsplit(self.path)
        path = parts.path or "/"
        if not self._host_allowed():
            return error(421, "This emulator answers only to 127.0.0.1 and localhost.")
        if not path.startswith(CONTROL_PREFIX):
            # The /ex/ route is the product REST API too: faults aimed at one hit both.
            alias = product_path(path) if path.startswith(FORGE_API_PREFIX) else None
            fault = emu.faults.take(self.command, path, *([alias] if alias else []))
            if fault is not None:
                if fault.delay:
                    emu.stopping.wait(fault.delay)
                if fault.drop:
                    self.close_connection = True
                    return None
                if fault.status is not None:
                    return _fault_reply(fault, fault.status)
        return self._route(path, parts.query, body)

    def _route(self, path: str, query: str, body: bytes) -> Reply:
        emu = self.emulator
        method = self.command
        context_path = emu.product.context_path
        if path in ("/", f"{context_path}/plugins/servlet/upm"):
            if method not in ("GET", "HEAD"):
                return error(405, "Method not allowed here.", {"Allow": "GET"})
            params = parse_qs(query)
            return render_admin(
                emu,
                app=(params.get("app") or [None])[0],
                module=(params.get("module") or [None])[0],
            )
        if path.startswith("/keys/"):
            return self._key(unquote(path[len("/keys/") :]))
        if path == JWKS_PATH:
            if method not in ("GET", "HEAD"):
                return error(405, "Method not allowed here.", {"Allow": "GET"})
            return json_reply(200, emu.forge_jwks())
        if path.startswith(FORGE_API_PREFIX):
            return handle_forge_api(emu, method, path, self.headers.get("Authorization"), body)
        if path in (f"{context_path}/atlassian-connect/all.js", "/atlassian-connect/all.js"):
            return _asset(ALL_JS, "application/javascript; charset=utf-8")
        if path == f"{CONTROL_PREFIX}/host.js":
            return _asset(HOST_JS, "application/javascript; charset=utf-8")
        if path == f"{CONTROL_PREFIX}/host.css":
            return _asset(HOST_CSS, "text/css; charset=utf-8")
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            content_type = self.headers.get("Content-Type", "")
            return handle_control(emu, method, path, query, body, content_type)
        match = self.properties_route.fullmatch(path)
        if match and emu.properties_api is not None:
            key = match.group("key")
            return emu.properties_api.handle(
                method,
                unquote(match.group("app")),
                unquote(key) if key else None,
                raw_path=path,
                query=query,
                token=self._token(query),
                body=body,
            )
        if path.startswith(f"{context_path}/rest/"):
            return error(404, "The emulator does not emulate this REST resource.")
        return error(404, "Not found.")

    def _key(self, kid: str) -> Reply:
        if self.command not in ("GET", "HEAD"):
            return error(405, "Method not allowed here.", {"Allow": "GET"})
        if kid != self.emulator.kid:
            return Reply(404, b"Unknown key id.\n", content_type="text/plain; charset=utf-8")
        return Reply(200, self.emulator.public_key_pem, content_type="application/x-pem-file")

    def _token(self, query: str) -> str | None:
        """The app's JWT: ``Authorization: JWT <token>`` or, as the product allows, ``?jwt=``."""
        header = self.headers.get("Authorization")
        if header:
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "jwt":
                return None
            return token.strip() or None
        values = parse_qs(query).get("jwt")
        return values[0] if values else None

    def _host_allowed(self) -> bool:
        # Refusing other Host names defeats DNS rebinding: a web page on evil.example that
        # resolves to 127.0.0.1 must not drive the control API.
        host = self.headers.get("Host")
        if not host:
            return True
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name.lower() in self.allowed_hosts

    def _read_body(self) -> tuple[bytes, Reply | None]:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return b"", error(411, "Send a Content-Length; chunked bodies are not accepted.")
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b"", None
        try:
            length = int(raw_length)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            return b"", error(400, "Content-Length is not a number.")
        if length > MAX_BODY:
            self.close_connection = True
            return b"", error(413, f"The request body is larger than {MAX_BODY} bytes.")
        return self.rfile.read(length), None

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        if reply.status != 204:
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and reply.status != 204:
            self.wfile.write(reply.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed request lines and the like: the same JSON shape as every other error.
        self.close_connection = True
        try:
            self._send(error(code, message or "Bad request."))
        except OSError:
            pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # On a malformed request line neither command nor path may be set.
        path = _redact(getattr(self, "path", None) or "")
        logger.debug("%s %s -> %s", getattr(self, "command", None), path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("connect_host: " + format, *args)


def _asset(text: str, content_type: str) -> Reply:
    return Reply(200, text.encode("utf-8"), content_type=content_type)


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    # A fixed port (2990) must be reusable at once after a restart.
    allow_reuse_address = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End kept-alive connections too: a stopped emulator must look down to clients."""
        with self._open_lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer is normal here (faults, stops): no traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def make_server(emulator: Emulator, host: str, port: int) -> EmulatorServer:
    handler = type(
        "BoundEmulatorHandler",
        (EmulatorHandler,),
        {
            "emulator": emulator,
            "properties_route": properties_route(emulator.product.context_path),
            "allowed_hosts": _LOOPBACK_NAMES | {host.lower()},
        },
    )
    return EmulatorServer((host, port), handler)
