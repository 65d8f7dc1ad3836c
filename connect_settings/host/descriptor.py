"""Fetching and validating an app descriptor the way the product's installer does.

Validation collects every problem it finds, so a developer fixes the descriptor in one pass;
each problem names the field (``modules.configurePage.url``) and what is wrong with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

__all__ = [
    "PAGE_MODULE_TYPES",
    "DescriptorError",
    "PageModule",
    "descriptor_url_for",
    "fetch_descriptor",
    "page_modules",
    "validate_descriptor",
]

MAX_DESCRIPTOR_BYTES = 1024 * 1024
APP_KEY_PATTERN = re.compile(r"[a-zA-Z0-9._-]+")
MAX_APP_KEY_LENGTH = 64
MODULE_KEY_PATTERN = re.compile(r"[a-zA-Z0-9-]+")
LIFECYCLE_EVENTS = ("installed", "uninstalled", "enabled", "disabled")
SCOPES = frozenset(
    {"READ", "WRITE", "DELETE", "PROJECT_ADMIN", "SPACE_ADMIN", "ADMIN", "ACT_AS_USER",
     "ACCESS_EMAIL_ADDRESSES"}
)  # fmt: skip
#: Page modules the admin page can show; the single-valued ones are objects, the rest lists.
PAGE_MODULE_TYPES: dict[str, bool] = {
    "configurePage": True,
    "postInstallPage": True,
    "generalPages": False,
    "adminPages": False,
}


class DescriptorError(Exception):
    """The descriptor could not be fetched or is not valid; ``problems`` lists why."""

    def __init__(self, url: str, problems: list[str], *, fetched: bool = True) -> None:
        self.url = url
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        headline = "is not valid" if fetched else "could not be read"
        super().__init__(f"The app descriptor at {url} {headline}:\n{lines}")

    @property
    def message(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class PageModule:
    type: str
    key: str
    url: str
    name: str


def descriptor_url_for(app_url: str) -> str:
    """The descriptor URL for an app's base URL (or the descriptor URL itself)."""
    parts = urlsplit(app_url)
    if parts.path.endswith(".json"):
        return app_url
    return app_url.split("?", 1)[0].rstrip("/") + "/atlassian-connect.json"


def fetch_descriptor(url: str, *, session: requests.Session, timeout: float) -> dict[str, Any]:
    """GET and parse the descriptor; :class:`DescriptorError` for anything but a JSON object."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DescriptorError(url, ["it is not an absolute http(s) URL"], fetched=False)
    try:
        response = session.get(
            url,
            timeout=timeout,
            stream=True,
            headers={"Accept": "application/json"},
        )
        try:
            body = response.raw.read(MAX_DESCRIPTOR_BYTES + 1, decode_content=True)
        finally:
            response.close()
    except requests.Timeout as err:
        reason = f"no answer within {timeout:g} s"
        raise DescriptorError(url, [reason], fetched=False) from err
    except (requests.RequestException, OSError) as err:
        reason = f"could not connect ({type(err).__name__}): is the app running?"
        raise DescriptorError(url, [reason], fetched=False) from err
    if response.status_code != 200:
        reason = f"the app answered HTTP {response.status_code}"
        raise DescriptorError(url, [reason], fetched=False)
    if len(body) > MAX_DESCRIPTOR_BYTES:
        reason = f"it is larger than {MAX_DESCRIPTOR_BYTES} bytes"
        raise DescriptorError(url, [reason], fetched=False)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise DescriptorError(url, ["it is not valid JSON"], fetched=False) from None
    if not isinstance(data, dict):
        raise DescriptorError(url, ["it is not a JSON object"], fetched=False)
    return data


def _check_absolute_url(value: object, name: str) -> Iterator[str]:
    if not isinstance(value, str) or not value:
        yield f"{name}: required, an absolute URL"
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        yield f"{name}: {value!r} is not an absolute http(s) URL"
    elif parts.query or parts.fragment:
        yield f"{name}: must not have a query or fragment"


def _check_relative_url(value: object, name: str) -> Iterator[str]:
    if not isinstance(value, str) or not value:
        yield f"{name}: required, a URL relative to baseUrl"
    elif not value.startswith("/") or value.startswith("//"):
        yield f"{name}: {value!r} must be relative to baseUrl and start with '/'"


def _check_page(module: object, name: str) -> Iterator[str]:
    if not isinstance(module, dict):
        yield f"{name}: must be an object"
        return
    key = module.get("key")
    if not isinstance(key, str) or not MODULE_KEY_PATTERN.fullmatch(key):
        yield f"{name}.key: required, letters, digits and '-' only"
    yield from _check_relative_url(module.get("url"), f"{name}.url")
    label = module.get("name")
    if not isinstance(label, dict) or not isinstance(label.get("value"), str) or not label["value"]:
        yield f"{name}.name.value: required, the page's title"


def _check_modules(modules: object) -> Iterator[str]:
    if modules is None:
        return
    if not isinstance(modules, dict):
        yield "modules: must be an object of module types"
        return
    keys: list[str] = []
    for module_type, value in modules.items():
        single = PAGE_MODULE_TYPES.get(module_type)  # True, False, or None: not a page type
        if single or (single is None and isinstance(value, dict)):
            entries = [(f"modules.{module_type}", value)]
        elif isinstance(value, list):
            entries = [(f"modules.{module_type}[{i}]", v) for i, v in enumerate(value)]
        else:
            yield f"modules.{module_type}: must be a list of modules"
            continue
        for name, entry in entries:
            if single is not None:
                yield from _check_page(entry, name)
            elif not isinstance(entry, dict):
                yield f"{name}: must be an object"
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                keys.append(entry["key"])
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        yield f"modules: the module key {key!r} is used more than once"


def validate_descriptor(data: dict[str, Any]) -> list[str]:
    """Every problem with the descriptor, as readable lines; empty when it installs."""
    problems: list[str] = []
    key = data.get("key")
    if not isinstance(key, str) or not key:
        problems.append("key: required, the app key")
    elif len(key) > MAX_APP_KEY_LENGTH or not APP_KEY_PATTERN.fullmatch(key):
        problems.append(
            f"key: at most {MAX_APP_KEY_LENGTH} letters, digits, '.', '_' or '-' characters"
        )
    problems.extend(_check_absolute_url(data.get("baseUrl"), "baseUrl"))
    for name in ("name", "description"):
        if name in data and not isinstance(data[name], str):
            problems.append(f"{name}: must be a string")

    auth = data.get("authentication")
    auth_type = auth.get("type") if isinstance(auth, dict) else None
    if not isinstance(auth_type, str):
        problems.append('authentication: required, {"type": "jwt"}')
    elif auth_type.lower() != "jwt":
        problems.append(
            f"authentication.type: {auth_type!r} is not emulated; Connect apps with a back end "
            'use "jwt"'
        )

    lifecycle = data.get("lifecycle")
    if not isinstance(lifecycle, dict):
        problems.append('lifecycle: required for JWT apps, with at least "installed"')
    else:
        if "installed" not in lifecycle:
            problems.append("lifecycle.installed: required for JWT apps (it receives the secret)")
        for event, url in lifecycle.items():
            if event not in LIFECYCLE_EVENTS:
                problems.append(f"lifecycle.{event}: unknown event; known: {LIFECYCLE_EVENTS}")
            else:
                problems.extend(_check_relative_url(url, f"lifecycle.{event}"))

    migrations = data.get("apiMigrations")
    if migrations is not None:
        if not isinstance(migrations, dict) or not all(
            isinstance(v, bool) for v in migrations.values()
        ):
            problems.append("apiMigrations: must be an object of booleans")

    scopes = data.get("scopes")
    if scopes is not None:
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            problems.append("scopes: must be a list of scope names")
        else:
            unknown = [s for s in scopes if s.upper() not in SCOPES]
            if unknown:
                problems.append(f"scopes: unknown {unknown}; known: {sorted(SCOPES)}")

    problems.extend(_check_modules(data.get("modules")))
    return problems


def page_modules(descriptor: dict[str, Any]) -> list[PageModule]:
    """The descriptor's page modules in a stable order, configure page first."""
    modules = descriptor.get("modules")
    if not isinstance(modules, dict):
        return []
    pages: list[PageModule] = []
    for module_type in PAGE_MODULE_TYPES:
        value = modules.get(module_type)
        entries = value if isinstance(value, list) else [value] if value else []
        for entry in entries:
            if isinstance(entry, dict):
                label = entry.get("name")
                pages.append(
                    PageModule(
                        type=module_type,
                        key=str(entry.get("key", "")),
                        url=str(entry.get("url", "/")),
                        name=str(label.get("value", "")) if isinstance(label, dict) else "",
                    )
                )
    return pages
