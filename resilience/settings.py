"""Django settings of the app under test (``DJANGO_SETTINGS_MODULE=resilience.settings``).

The demo project, production-like (DEBUG off, so a 500 would be Django's bare error page and
never a traceback), reading everything that varies per run from the environment the stack
sets: the database, the app's URL, the key servers and Forge JWKS on loopback, and short
retry and lease times so that faults recover within a bounded run.
"""

import environ

from demo_project.settings import *  # noqa: F403
from demo_project.settings import CONNECT_SETTINGS, LOGGING

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

CONNECT_SETTINGS = {
    **CONNECT_SETTINGS,
    # The emulators and the key server live on 127.0.0.1 over plain http.
    "HOST_ALLOWLIST": ["127.0.0.1", "localhost"],
    "INSTALL_KEY_TIMEOUT": env.float("RESILIENCE_KEY_TIMEOUT", default=2.0),
    "FORGE_APP_ID": env.str("RESILIENCE_FORGE_APP_ID", default=""),
    "FORGE_JWKS_URLS": env.list("RESILIENCE_FORGE_JWKS_URLS", default=[]),
    "FORGE_STAGING_JWKS_URLS": env.list("RESILIENCE_FORGE_JWKS_URLS", default=[]),
    "FORGE_API_HOSTS": ["api.atlassian.com", "127.0.0.1"],
    # Faults must heal within a bounded run: short backoffs, timeouts and leases.
    "HTTP_TIMEOUT": env.float("RESILIENCE_HTTP_TIMEOUT", default=2.0),
    "HTTP_RETRIES": env.int("RESILIENCE_HTTP_RETRIES", default=2),
    "HTTP_BACKOFF_FACTOR": 0.05,
    "HTTP_RETRY_MAX_WAIT": 2.0,
    "MIRROR_RETRY_BASE": env.float("RESILIENCE_MIRROR_RETRY_BASE", default=0.2),
    "MIRROR_RETRY_CAP": 2.0,
    "MIRROR_MAX_ATTEMPTS": env.int("RESILIENCE_MIRROR_MAX_ATTEMPTS", default=20),
    "MIRROR_INSTALL_DELAY": 0.5,
    "MIRROR_LEASE_SECONDS": env.float("RESILIENCE_MIRROR_LEASE_SECONDS", default=120.0),
}

# Loopback http key servers and hosts are the point of a loopback-only run.
SILENCED_SYSTEM_CHECKS = [
    "connect_settings.E003",
    "connect_settings.E005",
    "connect_settings.W001",
    "connect_settings.W002",
    "connect_settings.E021",
]

# Warnings only (the suites count answers; request logs would drown the figures).
LOGGING = {
    **LOGGING,
    "loggers": {"connect_settings": {"handlers": ["console"], "level": "WARNING"}},
}
