"""The process-wide install-key fetcher, built from settings and rebuilt when they change."""

from __future__ import annotations

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
            )
        return _fetcher


def reset() -> None:
    global _fetcher
    with _lock:
        _fetcher = None
