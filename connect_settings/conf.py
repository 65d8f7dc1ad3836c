"""The one settings object over ``settings.CONNECT_SETTINGS``.

Values are read lazily on attribute access and cached until Django's ``setting_changed``
signal fires for ``CONNECT_SETTINGS`` (so ``override_settings`` works); unknown names are an
``ImproperlyConfigured`` error rather than a silent typo.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

#: Production install-key servers, tried in order (PROTOCOL.md section 3).
ATLASSIAN_KEY_SERVERS = (
    "https://asap-distribution.us-west-2.prod.atl-asap.net",
    "https://connect-install-keys.atlassian.com",
)

#: Atlassian's cloud product domains.
ATLASSIAN_HOSTS = ("*.atlassian.net", "*.jira.com", "*.jira-dev.com")

DEFAULTS: dict[str, Any] = {
    #: The app key (descriptor ``key``); issuer of our session tokens.
    "APP_KEY": "",
    #: The app's public base URL: the descriptor ``baseUrl`` and the signed-install ``aud``.
    "BASE_URL": "",
    #: Other base URLs a signed install may be addressed to (an old domain, a tunnel).
    "ALLOWED_BASE_URLS": [],
    #: Extra descriptor content merged into the generated one (name, modules, scopes, ...).
    "DESCRIPTOR": {},
    #: Install-key servers, tried in order; point tests and the host emulator at their own.
    "INSTALL_KEY_SERVERS": list(ATLASSIAN_KEY_SERVERS),
    #: Seconds to wait for one key server.
    "INSTALL_KEY_TIMEOUT": 5.0,
    #: fnmatch patterns for tenant base-URL host names allowed to install.
    "HOST_ALLOWLIST": list(ATLASSIAN_HOSTS),
    #: Clock-skew leeway in seconds for every token check.
    "JWT_LEEWAY": 30,
    #: Lifetime of app session tokens (``X-acpt``), in seconds; sliding.
    "SESSION_TOKEN_TTL": 900,
    #: Encryption keys for shared secrets at rest, newest first. Empty: derived from
    #: SECRET_KEY (system check W004 warns).
    "SECRET_KEYS": [],
    #: Largest lifecycle request body accepted, in bytes.
    "MAX_LIFECYCLE_BODY": 64 * 1024,
    #: Days an uninstalled tenant's data is kept before ``connect_purge`` deletes it.
    "UNINSTALLED_RETENTION_DAYS": 30,
    #: Outgoing host calls: timeout per attempt (s), retries of idempotent calls on
    #: 429/502/503/504, urllib3 backoff factor (about 5 s, 10 s, 20 s ... capped at 30 s), and
    #: the most time spent waiting between attempts of one call (a longer Retry-After ends
    #: the retrying and is reported to the caller instead).
    "HTTP_TIMEOUT": 10.0,
    "HTTP_RETRIES": 4,
    "HTTP_BACKOFF_FACTOR": 2.5,
    "HTTP_RETRY_MAX_WAIT": 60.0,
    #: Settings mirrored to the host's app properties: a list of
    #: ``{"property": KEY, "setting": ADDON_SETTING_KEY, "field": FIELD or omitted}``.
    "MIRROR": [],
    #: Task backend alias for deliveries; attempts before an entry is marked failed; backoff
    #: between attempts (base seconds, doubled each time, capped), Retry-After permitting.
    "MIRROR_TASK_BACKEND": "default",
    "MIRROR_MAX_ATTEMPTS": 5,
    "MIRROR_RETRY_BASE": 5.0,
    "MIRROR_RETRY_CAP": 600.0,
    #: Seconds deliveries wait after an install (the host accepts the new secret only once
    #: the install completed); ``enabled`` releases them at once.
    "MIRROR_INSTALL_DELAY": 5.0,
    #: Seconds one delivery may hold an entry before another may take it over (a worker
    #: killed mid-delivery); longer than a delivery's HTTP attempts take.
    "MIRROR_LEASE_SECONDS": 120.0,
    #: Forge Remote: the app's ARI (``ari:cloud:ecosystem::app/<uuid>``; empty: Forge off),
    #: JWKS URLs for Forge Invocation Tokens (production, and staging for apps whose
    #: ``apiBaseUrl`` is on api.stg.atlassian.com), leeway, JWKS timeout and refetch cooldown,
    #: and the hosts an ``apiBaseUrl`` may name (fnmatch; https unless loopback).
    "FORGE_APP_ID": "",
    "FORGE_JWKS_URLS": ["https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json"],
    "FORGE_STAGING_JWKS_URLS": ["https://forge.cdn.stg.atlassian-dev.net/.well-known/jwks.json"],
    "FORGE_LEEWAY": 10,
    "FORGE_JWKS_TIMEOUT": 5.0,
    "FORGE_JWKS_COOLDOWN": 30.0,
    "FORGE_API_HOSTS": ["api.atlassian.com", "api.stg.atlassian.com"],
    #: Django cache alias for tenant lookups, and their lifetime in seconds.
    "TENANT_CACHE": "default",
    "TENANT_CACHE_TTL": 300,
    #: Seconds each process may keep its own copy of a tenant read from a Redis
    #: ``TENANT_CACHE`` (invalidations reach every process through Redis pub/sub; this bounds
    #: a copy's life should one ever be missed). 0: read the shared cache on every request.
    "TENANT_LOCAL_TTL": 60,
    #: Dotted path to the ``django.forms.Form`` that declares the configure page's settings.
    #: Empty: the page has nothing to configure.
    "CONFIGURE_FORM": "",
    #: The ``AddonSetting`` key under which a tenant's configuration is stored (one JSON object).
    "CONFIGURE_SETTING_KEY": "appSettings",
    #: Largest ``POST /configure`` body accepted, in bytes (larger: 413).
    "MAX_CONFIGURE_BODY": 64 * 1024,
    #: How many recent changes the configure page lists (the admin shows them all).
    "CONFIGURE_HISTORY_ON_PAGE": 10,
    #: The host's JavaScript API, loaded by the configure page when it is framed by a product.
    #: Empty: never load it (the page works without it).
    "HOST_SCRIPT_URL": "https://connect-cdn.atl-paas.net/all.js",
}


class ConnectSettings:
    """Attribute access to CONNECT_SETTINGS with DEFAULTS filled in."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        user = getattr(django_settings, "CONNECT_SETTINGS", None) or {}
        if not isinstance(user, dict):
            raise ImproperlyConfigured("CONNECT_SETTINGS must be a dict.")
        unknown = sorted(set(user) - set(DEFAULTS))
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown CONNECT_SETTINGS key(s): {', '.join(unknown)}. "
                f"Known keys: {', '.join(sorted(DEFAULTS))}."
            )
        merged = {**DEFAULTS, **user}
        merged["BASE_URL"] = str(merged["BASE_URL"]).rstrip("/")
        return merged

    def __getattr__(self, name: str) -> Any:
        # Called only for names not yet in the instance's __dict__: the first read after a
        # (re)load copies every value there, so later reads are plain attribute lookups
        # (a few tens of nanoseconds, where this method costs about a microsecond, and the
        # hot path reads settings several times per request).
        if name.startswith("_"):
            raise AttributeError(name)
        if self._cache is None:
            self._cache = self._load()
            self.__dict__.update(self._cache)
        try:
            return self._cache[name]
        except KeyError:
            raise AttributeError(f"Unknown connect_settings setting: {name}") from None

    def reload(self) -> None:
        for name in self._cache or ():
            self.__dict__.pop(name, None)
        self._cache = None
        # Objects built from settings (key fetcher, cipher) are rebuilt on next use.
        from . import client, crypto, forge, install_keys

        client.reset()
        crypto.reset()
        forge.reset()
        install_keys.reset()


connect_settings = ConnectSettings()


@receiver(setting_changed)
def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting in ("CONNECT_SETTINGS", "SECRET_KEY", "DEBUG"):
        connect_settings.reload()
