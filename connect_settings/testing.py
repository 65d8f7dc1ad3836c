"""Test helpers for projects that use connect_settings, shipped as a pytest plugin.

Importing this module must not need configured Django settings (pytest loads plugins before
pytest-django configures Django), so everything Django-specific is imported inside functions.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "DEFAULT_SECRET",
    "FORGE_APP_ID",
    "ForgeSigner",
    "Installer",
    "KeyServer",
    "connect_host",
    "connect_host_confluence",
    "connect_host_factory",
    "generate_rsa_key",
    "install_payload",
    "make_tenant",
    "page_token",
    "public_pem",
    "signed_url",
]


JWKS_PATH = "/.well-known/jwks.json"


def generate_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class KeyServer:
    """A real HTTP install-key server on 127.0.0.1: ``GET /<kid>`` answers a PEM key.

    ``mode`` switches its behaviour for fault tests: ``"ok"``, ``"down"`` (500),
    ``"garbage"`` (200 with a body that is not a key), ``"slow"`` (waits ``delay`` seconds,
    released early by :meth:`stop`). ``requests`` counts the GETs it received.
    """

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.mode = "ok"
        self.delay = 5.0
        self.requests = 0
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                kid = self.path.lstrip("/")
                if self.path == JWKS_PATH and server.mode == "ok":
                    body = json.dumps(server.jwks()).encode()
                    self._send(200, body)
                    return
                if server.mode == "slow":
                    server._release.wait(server.delay)
                if server.mode == "down":
                    self._send(500, b"down")
                elif server.mode == "garbage":
                    self._send(200, b"-----BEGIN PUBLIC KEY-----\nnot a key\n")
                elif kid in server.keys:
                    self._send(200, public_pem(server.keys[kid]))
                else:
                    self._send(404, b"not found")

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-pem-file")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # serve_forever() checks for shutdown every poll_interval (default 0.5 s): keep stop()
        # from adding half a second to every test that uses a key server.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def jwks_url(self) -> str:
        """The same keys as a JSON Web Key Set (what Forge publishes for FITs)."""
        return self.url + JWKS_PATH

    def jwks(self) -> dict[str, Any]:
        from jwt.algorithms import RSAAlgorithm

        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def add_key(self, kid: str, key: rsa.RSAPrivateKey | None = None) -> rsa.RSAPrivateKey:
        self.keys[kid] = key or generate_rsa_key()
        return self.keys[kid]

    def start(self) -> KeyServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def connect_key_server() -> Iterator[KeyServer]:
    """A started :class:`KeyServer` on a free port; stopped after the test."""
    server = KeyServer().start()
    try:
        yield server
    finally:
        server.stop()


# --- tokens and tenants -------------------------------------------------------------------

DEFAULT_SECRET = "test-shared-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


def page_token(
    client_key: str,
    secret: str,
    method: str,
    url: str,
    *,
    sub: str | None = "557058:test-user",
    ttl: int = 180,
    now: float | None = None,
    base_path: str | None = None,
    qsh: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """A host token (iss = ``client_key``) whose qsh covers ``method`` + ``url``.

    ``base_path`` defaults to the path of CONNECT_SETTINGS['BASE_URL']; pass ``qsh`` to
    override (e.g. ``"context-qsh"`` for a context JWT).
    """
    from .jwt.canonical import query_string_hash_from_url
    from .jwt.tokens import mint_hs256

    if qsh is None:
        if base_path is None:
            from urllib.parse import urlsplit

            from .conf import connect_settings

            base_path = urlsplit(connect_settings.BASE_URL).path
        qsh = query_string_hash_from_url(method, url, base_path)
    claims: dict[str, Any] = {"iss": client_key, "qsh": qsh, "context": {}}
    if sub:
        claims["sub"] = sub
    claims.update(extra or {})
    return mint_hs256(claims, secret, ttl=ttl, now=now)


def signed_url(client_key: str, secret: str, url: str, **kwargs: Any) -> str:
    """``url`` with a ``jwt`` parameter for a GET, as the product loads an iframe."""
    token = page_token(client_key, secret, "GET", url, **kwargs)
    return f"{url}{'&' if '?' in url else '?'}jwt={token}"


def install_payload(client_key: str = "test-client-key", **overrides: Any) -> dict[str, Any]:
    """A complete install payload (PROTOCOL.md section 3) for the configured app."""
    from .conf import connect_settings

    payload = {
        "key": connect_settings.APP_KEY,
        "clientKey": client_key,
        "sharedSecret": DEFAULT_SECRET,
        "baseUrl": "https://example.atlassian.net",
        "displayUrl": "https://example.atlassian.net",
        "productType": "jira",
        "description": "Atlassian JIRA at https://example.atlassian.net",
        "serverVersion": "100000",
        "pluginsVersion": "1001.0.0",
        "serviceEntitlementNumber": "SEN-1",
        "entitlementId": "ent-1",
        "entitlementNumber": "E-1",
        "oauthClientId": "oauth-1",
        "eventType": "installed",
        "installationId": "ari:cloud:ecosystem::installation/00000000-0000-0000-0000-000000000001",
    }
    payload.update(overrides)
    return payload


def make_tenant(
    client_key: str = "test-client-key", shared_secret: str = DEFAULT_SECRET, **fields: Any
) -> Any:
    """Create (or replace) an installed, enabled tenant directly in the database."""
    from .models import Tenant
    from .tenants import invalidate

    defaults: dict[str, Any] = {
        "addon_key": "test-app",
        "base_url": "https://example.atlassian.net",
        "product_type": "jira",
        "installed": True,
        "enabled": True,
    }
    defaults.update(fields)
    tenant, _ = Tenant.objects.update_or_create(client_key=client_key, defaults=defaults)
    tenant.shared_secret = shared_secret
    tenant.save()
    invalidate(client_key)
    return tenant


class Installer:
    """Signs installs like Atlassian does: RS256 from a real key server on 127.0.0.1."""

    def __init__(self, key_server: KeyServer, kid: str | None = None) -> None:
        # Keys are immutable per kid and cached across workers and tests: a fresh kid per
        # key pair keeps one test's key from standing in for another's.
        kid = kid or f"test/kid-{uuid.uuid4().hex[:12]}"
        self.key_server = key_server
        self.kid = kid
        self.private_key = key_server.keys.get(kid) or key_server.add_key(kid)

    def token(
        self,
        client_key: str,
        path: str = "/installed",
        *,
        aud: str | list[str] | None = None,
        iss: str | None = None,
        kid: str | None = None,
        ttl: int = 180,
        now: float | None = None,
        qsh: str | None = None,
        key: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        from urllib.parse import urlsplit

        from .conf import connect_settings
        from .jwt.canonical import query_string_hash
        from .jwt.tokens import mint_rs256

        base = connect_settings.BASE_URL
        claims: dict[str, Any] = {
            "iss": client_key if iss is None else iss,
            "aud": [base] if aud is None else aud,
            "qsh": qsh
            if qsh is not None
            else query_string_hash("POST", path, "", urlsplit(base).path),
            "context": {},
        }
        claims.update(extra or {})
        return mint_rs256(claims, key or self.private_key, kid=kid or self.kid, ttl=ttl, now=now)

    def post(self, client: Any, path: str, payload: dict[str, Any], **kwargs: Any) -> Any:
        """POST ``payload`` to ``path`` through a Django test client, signed for it."""
        import json

        token = kwargs.pop("token", None) or self.token(payload.get("clientKey", ""), path)
        return client.post(
            path,
            data=json.dumps(payload),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"JWT {token}",
            **kwargs,
        )


@pytest.fixture
def connect_installer(connect_key_server: KeyServer, settings: Any) -> Installer:
    """An :class:`Installer` whose key server the app under test trusts."""
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "INSTALL_KEY_SERVERS": [connect_key_server.url],
    }
    return Installer(connect_key_server)


@pytest.fixture
def connect_tenant(db: Any) -> Any:
    """An installed tenant with a known shared secret (``testing.DEFAULT_SECRET``)."""
    return make_tenant()


# --- the host emulator ---------------------------------------------------------------------

from .host.testing import (  # noqa: E402  (re-exported fixtures of the emulator)
    connect_host,
    connect_host_confluence,
    connect_host_factory,
)


@pytest.fixture
def connect_live_install(
    live_server: Any, connect_host_factory: Any, settings: Any, transactional_db: Any
) -> Any:
    """Install the app running on ``live_server`` into a fresh emulator, for real.

    ``install("jira" | "confluence", **emulator_options)`` returns ``(emulator, tenant)``;
    the app trusts each emulator's key server and loopback tenant hosts.
    """
    from .models import Tenant

    def install(product: str = "jira", **options: Any) -> tuple[Any, Any]:
        emulator = connect_host_factory(product, **options)
        current = settings.CONNECT_SETTINGS
        servers = [s for s in current.get("INSTALL_KEY_SERVERS", []) if "127.0.0.1" in s]
        settings.CONNECT_SETTINGS = {
            **current,
            "BASE_URL": live_server.url,
            "INSTALL_KEY_SERVERS": [*servers, emulator.key_server_url],
            "HOST_ALLOWLIST": ["127.0.0.1", "localhost"],
        }
        emulator.install(live_server.url)
        return emulator, Tenant.objects.get(client_key=emulator.client_key)

    return install


# --- Forge Remote ----------------------------------------------------------------------------

FORGE_APP_ID = "ari:cloud:ecosystem::app/00000000-1111-2222-3333-444444444444"


def forge_installation_id() -> str:
    return f"ari:cloud:ecosystem::installation/{uuid.uuid4()}"


class ForgeSigner:
    """Mints Forge Invocation Tokens with a key published by a :class:`KeyServer`'s JWKS."""

    def __init__(
        self, key_server: KeyServer, kid: str = "forge-kid-1", app_id: str = FORGE_APP_ID
    ) -> None:
        self.key_server = key_server
        self.kid = kid
        self.app_id = app_id
        self.private_key = key_server.keys.get(kid) or key_server.add_key(kid)

    def fit(
        self,
        installation_id: str,
        *,
        cloud_id: str = "11111111-2222-3333-4444-555555555555",
        api_base_url: str = "https://api.atlassian.com/ex/jira/11111111-2222-3333-4444-555555555555",
        site_url: str | None = None,
        principal: str | None = None,
        ttl: int = 25,
        now: float | None = None,
        kid: str | None = None,
        key: Any = None,
        overrides: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        import time as _time

        import jwt as pyjwt

        issued = int(now if now is not None else _time.time())
        claims: dict[str, Any] = {
            "iss": "forge/invocation-token",
            "aud": self.app_id,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl,
            "jti": str(uuid.uuid4()),
            "app": {
                "id": self.app_id,
                "version": "1",
                "installationId": installation_id,
                "apiBaseUrl": api_base_url,
                "installation": {
                    "id": installation_id,
                    "contexts": [{"cloudId": cloud_id, "apiBaseUrl": api_base_url}],
                },
                "environment": {"type": "DEVELOPMENT", "id": str(uuid.uuid4())},
                "module": {"type": "core:endpoint", "key": "remote"},
            },
        }
        if site_url is not None:
            claims["context"] = {"cloudId": cloud_id, "siteUrl": site_url, "moduleKey": "ui"}
        if principal is not None:
            claims["principal"] = principal
        claims.update(overrides or {})
        for name in drop:
            claims.pop(name, None)
        # Encoded directly (not mint_rs256) so that dropped time claims stay dropped.
        return pyjwt.encode(
            claims,
            key or self.private_key,
            algorithm="RS256",
            headers={"typ": "JWT", "kid": kid or self.kid},
        )


@pytest.fixture
def connect_forge(connect_key_server: KeyServer, settings: Any) -> ForgeSigner:
    """A :class:`ForgeSigner` whose JWKS the app trusts, with FORGE_APP_ID configured."""
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "FORGE_APP_ID": FORGE_APP_ID,
        "FORGE_JWKS_URLS": [connect_key_server.jwks_url],
        "FORGE_STAGING_JWKS_URLS": [connect_key_server.jwks_url],
        "FORGE_API_HOSTS": ["api.atlassian.com", "api.stg.atlassian.com", "127.0.0.1"],
    }
    return ForgeSigner(connect_key_server)


def race(workers: int, work: Any, *, timeout: float = 60.0) -> list[Any]:
    """Run ``work(i)`` for i in ``range(workers)`` in threads released together by a barrier;
    return the results in order (an exception raised by ``work`` is returned in its place).

    Each thread closes its database connections, so this is safe with
    ``django_db(transaction=True)`` on PostgreSQL, where such races are meaningful.
    """
    from django.db import connections

    barrier = threading.Barrier(workers, timeout=30)
    results: list[Any] = [None] * workers

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as err:  # handed to the caller, who asserts on it
            results[i] = err
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"race: a worker was still running after {timeout} s")
    return results
