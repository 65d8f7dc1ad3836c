"""Iframe URLs for an app's page modules, built the way the product builds them.

The module URL's ``{variables}`` are substituted, the product's context parameters are
appended (``xdm_e``, ``xdm_c``, ``cp``, ``lic``, ``cv``, ``tz``, ``loc``; ``user_id`` and
``user_key`` only for apps that have not opted into the GDPR API migration), and a page JWT is
added whose qsh covers all of them, relative to the path of the app's baseUrl.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from .descriptor import PageModule, page_modules
from .state import Installation
from .tokens import page_token

__all__ = ["CONNECT_VERSION", "PageNotFound", "find_module", "page_url"]

CONNECT_VERSION = "1001.0.0-SNAPSHOT"
_VARIABLE = re.compile(r"\{([A-Za-z0-9_.]+)\}")


class PageNotFound(LookupError):
    """The app has no page module with that key (or no page module at all)."""


def find_module(installation: Installation, module_key: str | None = None) -> PageModule:
    modules = page_modules(installation.descriptor)
    if not modules:
        raise PageNotFound(f"The app {installation.key} declares no page module.")
    if module_key is None:
        return modules[0]
    for module in modules:
        if module.key == module_key:
            return module
    known = ", ".join(m.key for m in modules)
    raise PageNotFound(f"The app {installation.key} has no page module {module_key!r} ({known}).")


def _substitute(url: str, context: Mapping[str, str]) -> str:
    # Unknown variables become empty, as in the product.
    return _VARIABLE.sub(lambda m: quote(str(context.get(m.group(1), "")), safe=""), url)


def page_url(
    installation: Installation,
    module: PageModule,
    *,
    host_origin: str,
    context_path: str,
    client_key: str,
    account_id: str,
    context: Mapping[str, str] | None = None,
    timezone: str = "Europe/London",
    locale: str = "en-GB",
    now: float | None = None,
) -> str:
    """The signed iframe URL of ``module``; the JWT lives 180 s, like the product's."""
    descriptor = installation.descriptor
    relative = _substitute(module.url, context or {})
    parts = urlsplit(installation.app_base_url + relative)
    params = parse_qsl(parts.query, keep_blank_values=True)
    licensing = descriptor.get("enableLicensing") is True
    params += [
        ("xdm_e", host_origin),
        ("xdm_c", f"channel-{installation.key}__{module.key}"),
        ("cp", context_path),
        ("xdm_deprecated_addon_key_do_not_use", installation.key),
        ("lic", "active" if licensing else "none"),
        ("cv", CONNECT_VERSION),
        ("tz", timezone),
        ("loc", locale),
    ]
    migrations = descriptor.get("apiMigrations")
    if not (isinstance(migrations, dict) and migrations.get("gdpr") is True):
        params += [("user_id", "admin"), ("user_key", "admin")]
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    unsigned = f"{base}?{urlencode(params, quote_via=quote)}"
    token = page_token(
        installation.shared_secret,
        client_key=client_key,
        account_id=account_id,
        descriptor_base_url=installation.app_base_url,
        page_url=unsigned,
        now=now,
    )
    return f"{unsigned}&jwt={token}"
