"""JSON Web Key Sets for Forge Invocation Tokens: fetched, cached, refreshed with a cooldown.

PyJWT's ``PyJWKClient`` refetches on every unknown ``kid`` with no cooldown, so a stream of
forged ``kid`` values would become a stream of requests to Atlassian's CDN; this keeps its
parsing (``PyJWKSet``) and adds the cooldown, a timeout, a size bound and requests' pooling.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import jwt as pyjwt
import requests

from .errors import KeyUnavailable, TokenError

__all__ = ["JwksCache"]

MAX_JWKS_BYTES = 256 * 1024


class JwksCache:
    """RSA signing keys by ``kid`` from one or more JWKS URLs.

    Keys are kept ``ttl`` seconds; an unknown ``kid`` triggers at most one refetch per
    ``cooldown`` seconds (across all callers), after which it is simply unknown.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = 5.0,
        ttl: float = 3600.0,
        cooldown: float = 30.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str = "connect_settings",
    ) -> None:
        self.urls = list(urls)
        self.timeout = timeout
        self.ttl = ttl
        self.cooldown = cooldown
        self.clock = clock
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = user_agent
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()
        #: How many times the JWKS URLs were fetched (for tests and monitoring).
        self.fetches = 0

    def get(self, kid: str) -> Any:
        with self._lock:
            now = self.clock()
            fresh = self._fetched_at is not None and now - self._fetched_at < self.ttl
            key = self._keys.get(kid)
            if key is not None and fresh:
                return key
            may_fetch = self._fetched_at is None or now - self._fetched_at >= self.cooldown
            if may_fetch:
                self._refresh(now)
                key = self._keys.get(kid)
            if key is None:
                raise TokenError("The token's key id is not in the JWKS.", code="unknown_kid")
            return key

    def _refresh(self, now: float) -> None:
        keys: dict[str, Any] = {}
        unreachable = False
        for url in self.urls:
            try:
                response = self._session.get(url, timeout=self.timeout, stream=True)
                try:
                    body = response.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
                finally:
                    response.close()
                if response.status_code != 200 or len(body) > MAX_JWKS_BYTES:
                    unreachable = unreachable or response.status_code >= 500
                    continue
                jwk_set = pyjwt.PyJWKSet.from_json(body.decode("utf-8"))
            except (requests.RequestException, OSError):
                unreachable = True
                continue
            except (pyjwt.PyJWTError, ValueError, UnicodeDecodeError):
                continue  # garbage from one URL: the others may still serve keys
            for jwk in jwk_set.keys:
                if jwk.key_id and jwk.key_type == "RSA":
                    keys[jwk.key_id] = jwk.key
        self.fetches += 1
        self._fetched_at = now
        if keys:
            self._keys = keys
        elif unreachable and not self._keys:
            raise KeyUnavailable("The Forge JWKS could not be fetched; try again later.")
