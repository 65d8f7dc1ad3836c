"""Fetching the RSA public keys that signed installs are verified with.

Keys are immutable per ``kid`` (PROTOCOL.md section 3), so a verified key is cached for the
life of the process; failures are never cached, so a key server that comes back is used at
once.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from .errors import KeyUnavailable, TokenError

__all__ = ["KID_PATTERN", "InstallKeyFetcher", "SharedKeyStore", "check_kid"]


class SharedKeyStore(Protocol):
    """Where verified PEMs are shared between processes (e.g. a Django cache), so that a
    worker that never saw a ``kid`` still verifies it while the key servers are down."""

    def load(self, kid: str) -> bytes | None: ...

    def save(self, kid: str, pem: bytes) -> None: ...


#: Letters, digits, ``-``, ``_`` and single ``/`` between segments: nothing that could
#: climb out of the key server's path (no ``.``, ``%``, ``\``, ``//`` or a leading ``/``).
KID_PATTERN = re.compile(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*")
MAX_KID_LENGTH = 256
MAX_KEY_BYTES = 16 * 1024


def check_kid(kid: object) -> str:
    if not isinstance(kid, str) or not kid:
        raise TokenError("The token has no key id (kid).", code="invalid_kid")
    if len(kid) > MAX_KID_LENGTH or not KID_PATTERN.fullmatch(kid):
        raise TokenError("The token's key id (kid) has an invalid shape.", code="invalid_kid")
    return kid


class InstallKeyFetcher:
    """Looks a ``kid`` up on each key server in order; caches what verifies as an RSA key."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        timeout: float = 5.0,
        max_cached: int = 256,
        session: requests.Session | None = None,
        user_agent: str = "connect_settings",
        shared: SharedKeyStore | None = None,
    ) -> None:
        self.servers = [s.rstrip("/") for s in servers]
        self.timeout = timeout
        self.max_cached = max_cached
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = user_agent
        self._cache: OrderedDict[str, RSAPublicKey] = OrderedDict()
        self._shared = shared
        self._lock = threading.Lock()

    def get(self, kid: str) -> RSAPublicKey:
        check_kid(kid)
        with self._lock:
            key = self._cache.get(kid)
            if key is not None:
                self._cache.move_to_end(kid)
                return key
        key = self._from_shared(kid) or self._fetch(kid)
        with self._lock:
            self._cache[kid] = key
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
        return key

    def _from_shared(self, kid: str) -> RSAPublicKey | None:
        if self._shared is None:
            return None
        pem = self._shared.load(kid)
        if not pem:
            return None
        try:
            key = load_pem_public_key(pem)
        except (ValueError, TypeError):
            return None
        return key if isinstance(key, RSAPublicKey) else None

    def _fetch(self, kid: str) -> RSAPublicKey:
        unreachable = False
        for server in self.servers:
            try:
                response = self._session.get(
                    f"{server}/{kid}", timeout=self.timeout, allow_redirects=False, stream=True
                )
                try:
                    body = response.raw.read(MAX_KEY_BYTES + 1, decode_content=True)
                finally:
                    response.close()
            except (requests.RequestException, OSError):
                unreachable = True
                continue
            if response.status_code >= 500 or response.status_code == 429:
                unreachable = True
                continue
            if response.status_code != 200 or len(body) > MAX_KEY_BYTES:
                continue
            try:
                key = load_pem_public_key(body)
            except (ValueError, TypeError):
                continue
            if isinstance(key, RSAPublicKey):
                if self._shared is not None:
                    self._shared.save(kid, body)
                return key
        if unreachable:
            raise KeyUnavailable("No install key server could be reached; try again later.")
        raise TokenError("No key server knows the token's key id.", code="unknown_kid")

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
