"""The app descriptor (``atlassian-connect.json``), built from settings."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlsplit

from django.urls import reverse

from .conf import connect_settings


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def app_path(url_name: str) -> str:
    """A URL of ours relative to BASE_URL, as descriptors and qsh want it."""
    path = reverse(url_name)
    base = urlsplit(connect_settings.BASE_URL).path.rstrip("/")
    if base and (path == base or path.startswith(base + "/")):
        path = path[len(base) :] or "/"
    return path


def build_descriptor() -> dict[str, Any]:
    key = connect_settings.APP_KEY
    descriptor: dict[str, Any] = {
        "key": key,
        "name": key,
        "description": "",
        "baseUrl": connect_settings.BASE_URL,
        "authentication": {"type": "jwt"},
        "lifecycle": {
            "installed": app_path("connect_settings:installed"),
            "uninstalled": app_path("connect_settings:uninstalled"),
            "enabled": app_path("connect_settings:enabled"),
            "disabled": app_path("connect_settings:disabled"),
        },
        "apiMigrations": {"signed-install": True, "context-qsh": True, "gdpr": True},
        "scopes": ["READ"],
        "modules": {
            "configurePage": {
                "key": "configure",
                "url": app_path("connect_settings:configure"),
                "name": {"value": "Configure"},
            }
        },
    }
    return _merge(descriptor, connect_settings.DESCRIPTOR or {})
