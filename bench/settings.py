"""The demo's settings as the benchmark runs them (``DJANGO_SETTINGS_MODULE=bench.settings``).

Everything comes from ``demo_project.settings`` and its environment (``DATABASE_URL``,
``CACHE_URL``, ``DJANGO_DEBUG`` ...); only what would reach beyond loopback is switched off.
"""

from demo_project.settings import *  # noqa: F403
from demo_project.settings import CONNECT_SETTINGS

# Mirroring calls the tenant's product (example.atlassian.net here): benchmarks stay on
# 127.0.0.1, so nothing is mirrored.
CONNECT_SETTINGS = {**CONNECT_SETTINGS, "MIRROR": []}
# The benchmark serves plain http on 127.0.0.1 and its key server too: what these checks
# rightly refuse for a deployment is the point of a loopback-only run.
SILENCED_SYSTEM_CHECKS = ["connect_settings.E003", "connect_settings.E005"]
