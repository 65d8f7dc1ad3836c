"""System checks (ids ``connect_settings.E0xx`` errors, ``connect_settings.W0xx`` warnings)."""

from __future__ import annotations

import fnmatch
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .conf import connect_settings
from .payloads import LOOPBACK_HOSTS

#: Host names no allow-list meant for Atlassian should admit.
_PROBE_HOSTS = ("evil.example", "attacker.test", "example.com")


def _https(url: str) -> bool:
    return urlsplit(url).scheme == "https"


@register(Tags.security, "connect_settings")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        app_key = connect_settings.APP_KEY
    except ImproperlyConfigured as err:
        return [Error(str(err), id="connect_settings.E000")]
    errors: list[CheckMessage] = []
    debug = django_settings.DEBUG
    base_url = connect_settings.BASE_URL
    if not app_key:
        errors.append(
            Error(
                "CONNECT_SETTINGS['APP_KEY'] is not set.",
                hint="Set it to the app's key.",
                id="connect_settings.E001",
            )
        )
    if not base_url:
        errors.append(
            Error(
                "CONNECT_SETTINGS['BASE_URL'] is not set.",
                hint="Set it to the app's public URL, e.g. https://app.example.com.",
                id="connect_settings.E002",
            )
        )
    elif not debug and not _https(base_url):
        errors.append(
            Error(
                "CONNECT_SETTINGS['BASE_URL'] must use https when DEBUG is off.",
                id="connect_settings.E003",
            )
        )
    servers = connect_settings.INSTALL_KEY_SERVERS
    if not servers:
        errors.append(
            Error(
                "CONNECT_SETTINGS['INSTALL_KEY_SERVERS'] is empty: no install can verify.",
                id="connect_settings.E004",
            )
        )
    elif not debug and not all(_https(str(s)) for s in servers):
        errors.append(
            Error(
                "Every install key server must use https when DEBUG is off.",
                id="connect_settings.E005",
            )
        )
    patterns = [str(p).lower() for p in connect_settings.HOST_ALLOWLIST]
    if not debug and any(fnmatch.fnmatchcase(h, p) for h in _PROBE_HOSTS for p in patterns):
        errors.append(
            Error(
                "CONNECT_SETTINGS['HOST_ALLOWLIST'] admits any host.",
                hint="List Atlassian's domains, e.g. '*.atlassian.net'.",
                id="connect_settings.E006",
            )
        )
    if not debug and any(p in LOOPBACK_HOSTS for p in patterns):
        errors.append(
            Warning(
                "CONNECT_SETTINGS['HOST_ALLOWLIST'] admits loopback hosts with DEBUG off.",
                id="connect_settings.W002",
            )
        )
    keys = connect_settings.SECRET_KEYS
    if not keys:
        errors.append(
            Warning(
                "Shared secrets are encrypted with a key derived from SECRET_KEY.",
                hint="Set CONNECT_SETTINGS['SECRET_KEYS'] to a list of keys of their own "
                "(newest first) so that rotating SECRET_KEY cannot lock the secrets away.",
                id="connect_settings.W001",
            )
        )
    elif isinstance(keys, str) or any(not str(k).strip() for k in keys):
        errors.append(
            Error(
                "CONNECT_SETTINGS['SECRET_KEYS'] must be a list of non-empty strings.",
                id="connect_settings.E007",
            )
        )
    return errors


@register("connect_settings")
def check_configure_form(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """CONFIGURE_FORM must import (else the configure page fails on first use)."""
    from .forms import configure_form_class

    try:
        configure_form_class()
    except ImproperlyConfigured as err:
        return [Error(str(err), id="connect_settings.E008")]
    except ImportError as err:
        return [Error(f"CONFIGURE_FORM cannot be imported: {err}", id="connect_settings.E008")]
    return []


@register("connect_settings")
def check_mirror(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """MIRROR entries: well formed, within the host's limits, and never a secret field."""
    from .properties import MAX_PROPERTIES, PropertyLimitError, check_key

    try:
        items = connect_settings.MIRROR
    except ImproperlyConfigured:
        return []  # reported by check_settings
    errors: list[CheckMessage] = []
    if not isinstance(items, list | tuple):
        return [Error("CONNECT_SETTINGS['MIRROR'] must be a list.", id="connect_settings.E010")]
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"CONNECT_SETTINGS['MIRROR'][{index}]"
        if not isinstance(item, dict) or not {"property", "setting"} <= set(item):
            errors.append(
                Error(
                    f"{where} needs 'property' and 'setting' (and may name a 'field').",
                    id="connect_settings.E010",
                )
            )
            continue
        unknown = set(item) - {"property", "setting", "field"}
        if unknown:
            errors.append(
                Error(f"{where} has unknown keys: {sorted(unknown)}.", id="connect_settings.E010")
            )
        try:
            check_key(str(item["property"]))
        except PropertyLimitError as err:
            errors.append(Error(f"{where}: {err}", id="connect_settings.E011"))
        if item["property"] in seen:
            errors.append(
                Error(
                    f"{where}: property {item['property']!r} is mirrored twice.",
                    id="connect_settings.E012",
                )
            )
        seen.add(item["property"])
        if item.get("field") and _is_secret_field(str(item["setting"]), str(item["field"])):
            errors.append(
                Error(
                    f"{where} mirrors the secret field {item['field']!r}: app properties are "
                    "readable by anyone who can call the REST API as the app.",
                    id="connect_settings.E013",
                )
            )
    if len(seen) > MAX_PROPERTIES:
        errors.append(
            Error(
                f"More than {MAX_PROPERTIES} mirrored properties: the host keeps at most "
                f"{MAX_PROPERTIES} per app.",
                id="connect_settings.E014",
            )
        )
    return errors


def _is_secret_field(setting: str, field: str) -> bool:
    from .forms import configure_form_class, secret_field_names

    if setting != connect_settings.CONFIGURE_SETTING_KEY:
        return False
    try:
        form_class = configure_form_class()
    except (ImportError, ImproperlyConfigured):
        return False  # an unloadable form is reported by its own check
    return field in secret_field_names(form_class)


@register(Tags.security, "connect_settings")
def check_forge(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Forge Remote settings, when FORGE_APP_ID turns it on."""
    from .forge import APP_ARI

    try:
        app_id = connect_settings.FORGE_APP_ID
    except ImproperlyConfigured:
        return []
    if not app_id:
        return []
    errors: list[CheckMessage] = []
    if not APP_ARI.fullmatch(str(app_id)):
        errors.append(
            Error(
                "CONNECT_SETTINGS['FORGE_APP_ID'] must be ari:cloud:ecosystem::app/<uuid>.",
                id="connect_settings.E020",
            )
        )
    debug = django_settings.DEBUG
    urls = [*connect_settings.FORGE_JWKS_URLS, *connect_settings.FORGE_STAGING_JWKS_URLS]
    if not connect_settings.FORGE_JWKS_URLS:
        errors.append(
            Error("CONNECT_SETTINGS['FORGE_JWKS_URLS'] is empty.", id="connect_settings.E021")
        )
    elif not debug and not all(_https(str(u)) for u in urls):
        errors.append(
            Error(
                "Every Forge JWKS URL must use https when DEBUG is off.", id="connect_settings.E021"
            )
        )
    patterns = [str(p).lower() for p in connect_settings.FORGE_API_HOSTS]
    if not debug and any(fnmatch.fnmatchcase(h, p) for h in _PROBE_HOSTS for p in patterns):
        errors.append(
            Error(
                "CONNECT_SETTINGS['FORGE_API_HOSTS'] admits any host.", id="connect_settings.E022"
            )
        )
    return errors
