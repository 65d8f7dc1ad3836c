"""The process-wide install-key fetcher, built from settings and rebuilt when they change."""

from __future__ import annotations

import hashlib
import threading

from . import __version__
from .jwt.keys import InstallKeyFetcher

_lock = threading.Lock()
_fetcher: InstallKeyFetcher | None = None


def fetcher() -> InstallKeyFetcher:
    global _fetcher
    with _lock:
        if _fetcher is None:
            from .conf import connect_settings

            _fetcher = InstallKeyFetcher(
                connect_settings.INSTALL_KEY_SERVERS,
                timeout=float(connect_settings.INSTALL_KEY_TIMEOUT),
                user_agent=f"django-connect-settings/{__version__}",
                shared=CacheKeyStore(),
            )
        return _fetcher


class CacheKeyStore:
    """Install keys in the tenant cache (shared by workers): keys are immutable per kid."""

    TTL = 30 * 24 * 3600

    def _key(self, kid: str) -> str:
        return "connect_settings:install-key:v1:" + hashlib.sha256(kid.encode()).hexdigest()[:40]

    def load(self, kid: str) -> bytes | None:
        from django.core.cache import caches

        from .conf import connect_settings

        value = caches[connect_settings.TENANT_CACHE].get(self._key(kid))
        return value if isinstance(value, bytes) else None

    def save(self, kid: str, pem: bytes) -> None:
        from django.core.cache import caches

        from .conf import connect_settings

        caches[connect_settings.TENANT_CACHE].set(self._key(kid), pem, self.TTL)


def reset() -> None:
    global _fetcher
    with _lock:
        _fetcher = None
