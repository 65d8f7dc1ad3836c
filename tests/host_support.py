"""Support for the host emulator's tests: a fake Connect app, fixtures, request helpers.

The fake app is a tiny Connect app on a real 127.0.0.1 server.

It serves a descriptor, verifies every lifecycle callback the way a careful app must (the
signed install's RS256 key fetched over HTTP from the emulator's key server, ``aud``, ``iss``,
qsh relative to its own base path; HS256 with the stored secret for enabled/disabled), records
what it received, and verifies page loads. It proves the install flow without Django.
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from connect_settings.host import Emulator
from connect_settings.jwt.canonical import query_string_hash
from connect_settings.jwt.errors import TokenError
from connect_settings.jwt.keys import InstallKeyFetcher
from connect_settings.jwt.tokens import mint_hs256, read_unverified, verify_hs256, verify_rs256

APP_KEY = "com.example.fake-app"


@dataclass
class Received:
    event: str
    path: str
    header: dict[str, Any]
    claims: dict[str, Any]
    body: dict[str, Any]
    error: str = ""
    token: str = ""


@dataclass
class FakeApp:
    """``base_path`` puts the app under a sub-path (qsh must be relative to it)."""

    key_server: str
    base_path: str = "/app"
    key: str = APP_KEY
    received: list[Received] = field(default_factory=list)
    #: event -> (status, body) to answer instead of verifying (to make installs fail).
    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    descriptor_overrides: dict[str, Any] = field(default_factory=dict)
    shared_secret: str | None = None
    client_key: str | None = None

    def __post_init__(self) -> None:
        self._keys = InstallKeyFetcher([self.key_server], timeout=5)
        self._lock = threading.Lock()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                app._get(self)

            def do_POST(self) -> None:
                app._post(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # Lifecycle of the fake itself --------------------------------------------------------

    def start(self) -> FakeApp:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def origin(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.origin + self.base_path

    def descriptor(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "name": "Fake app",
            "baseUrl": self.base_url,
            "authentication": {"type": "jwt"},
            "lifecycle": {
                "installed": "/installed",
                "uninstalled": "/uninstalled",
                "enabled": "/enabled",
                "disabled": "/disabled",
            },
            "apiMigrations": {"signed-install": True, "context-qsh": True, "gdpr": True},
            "scopes": ["READ", "WRITE"],
            "modules": {
                "configurePage": {
                    "key": "configure",
                    "url": "/configure",
                    "name": {"value": "Configure"},
                },
                "generalPages": [
                    {"key": "overview", "url": "/overview?tab=main", "name": {"value": "Overview"}}
                ],
            },
        }
        for name, value in self.descriptor_overrides.items():
            if value is None:
                data.pop(name, None)
            else:
                data[name] = copy.deepcopy(value)
        return data

    def events(self) -> list[str]:
        with self._lock:
            return [r.event for r in self.received]

    def last(self, event: str) -> Received:
        with self._lock:
            return next(r for r in reversed(self.received) if r.event == event)

    # HTTP --------------------------------------------------------------------------------

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: bytes = b"") -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _relative(self, path: str) -> str:
        return path[len(self.base_path) :] if path.startswith(self.base_path) else path

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        relative = self._relative(parts.path)
        if relative == "/atlassian-connect.json":
            self._send(handler, 200, json.dumps(self.descriptor()).encode())
            return
        # Any other GET is a page load: verify the page JWT like an app's middleware.
        token = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("jwt", "")
        try:
            if self.shared_secret is None:
                raise TokenError("not installed")
            claims = verify_hs256(token, self.shared_secret)
            expected = query_string_hash("GET", parts.path, parts.query, self.base_path)
            if claims.get("qsh") != expected or claims.get("iss") != self.client_key:
                raise TokenError("qsh or iss mismatch")
        except TokenError as err:
            self._send(handler, 401, json.dumps({"error": err.code}).encode())
            return
        self._send(handler, 200, json.dumps({"claims": claims}).encode())

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        event = self._relative(parts.path).strip("/")
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        body = json.loads(raw or b"{}")
        auth = handler.headers.get("Authorization", "")
        token = auth[4:] if auth.startswith("JWT ") else ""
        record = Received(event, parts.path, {}, {}, body, token=token)
        try:
            record.header, _ = read_unverified(token)
            record.claims = self._verify(event, token, record.header, parts.path, parts.query)
            if record.claims.get("iss") != body.get("clientKey"):
                raise TokenError("iss is not the body's clientKey")
            if handler.headers.get("Content-Type") != "application/json":
                raise TokenError("not JSON")
        except TokenError as err:
            record.error = err.message
        with self._lock:
            self.received.append(record)
        if event in self.answers:
            status, answer = self.answers[event]
            self._send(handler, status, answer)
            return
        if record.error:
            self._send(handler, 401, json.dumps({"error": record.error}).encode())
            return
        if event == "installed":
            self.shared_secret = body["sharedSecret"]
            self.client_key = body["clientKey"]
        handler.send_response(204)
        handler.end_headers()

    def _verify(
        self, event: str, token: str, header: dict[str, Any], path: str, query: str
    ) -> dict[str, Any]:
        if event in ("installed", "uninstalled"):
            key = self._keys.get(str(header.get("kid")))
            claims = verify_rs256(token, key, audience=[self.base_url])
        else:
            if self.shared_secret is None:
                raise TokenError("no shared secret yet")
            claims = verify_hs256(token, self.shared_secret)
        if claims.get("qsh") != query_string_hash("POST", path, query, self.base_path):
            raise TokenError("bad qsh")
        return claims


# Calling the app properties REST API as the app. -----------------------------------------


def prop_url(emu: Emulator, prop: str | None = None, app_key: str = APP_KEY) -> str:
    url = f"{emu.base_url}/rest/atlassian-connect/1/addons/{quote(app_key, safe='')}/properties"
    return url if prop is None else f"{url}/{quote(prop, safe='')}"


def app_jwt(
    emu: Emulator, method: str, url: str, *, secret: str | None = None, **claims: Any
) -> str:
    parts = urlsplit(url)
    qsh = query_string_hash(method, parts.path, parts.query, base_path=emu.product.context_path)
    return mint_hs256({"iss": APP_KEY, "qsh": qsh, **claims}, secret or emu.shared_secret(APP_KEY))


def call(
    emu: Emulator,
    method: str,
    prop: str | None = None,
    body: str | bytes | None = None,
    *,
    token: str | None = None,
    sign: bool = True,
) -> requests.Response:
    url = prop_url(emu, prop)
    headers = {"Content-Type": "application/json"}
    if sign:
        headers["Authorization"] = f"JWT {token or app_jwt(emu, method, url)}"
    data = body.encode("utf-8") if isinstance(body, str) else body
    return requests.request(method, url, data=data, headers=headers, timeout=10)


def assert_error(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"message", "statusCode"}
    assert body["statusCode"] == status
    assert isinstance(body["message"], str) and body["message"]
    return body
