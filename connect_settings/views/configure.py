"""``/configure``: the admin's configuration page (GET) and its AJAX save (POST).

Thin HTTP over :mod:`connect_settings.configuration`: authentication, body limits and JSON
shapes here; validation, versions, history and storage there.
"""

from __future__ import annotations

import functools
import json
from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils.functional import SimpleLazyObject
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt

from ..conf import connect_settings
from ..configuration import ConfigurationConflict, ConfigurationInvalid, save_configuration
from ..configure_page import (
    asset_urls,
    describe_history,
    digest,
    form_part,
    history_part,
    mirror_status,
    page_locale,
    read_state,
    recent_changes,
)
from ..decorators import authenticate, check_valid_token
from ..exceptions import BadRequest, ConnectError
from ..forms import build_form, configure_form_class, field_rows
from ..models import Tenant
from ..page_cache import render_page
from ..payloads import LOOPBACK_HOSTS, UnsupportedMediaType
from ..responses import error_response, exception_response

#: The only top-level keys a save may carry.
SAVE_KEYS = frozenset({"values", "version"})


class BodyTooLarge(ConnectError):
    code = "body_too_large"
    status = 413


@functools.lru_cache(maxsize=1024)  # a pure function of the URL, asked twice per page load
def _origin(url: str) -> str | None:
    parts = urlsplit(url or "")
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def tenant_origins(tenant: Tenant) -> list[str]:
    origins: list[str] = []
    for url in (tenant.base_url, tenant.display_url):
        origin = _origin(url)
        if origin and origin not in origins:
            origins.append(origin)
    return origins


def frame_ancestors(tenant: Tenant) -> str:
    """CSP ``frame-ancestors`` naming the tenant's own origins only."""
    return "frame-ancestors " + (" ".join(tenant_origins(tenant)) or "'none'")


@functools.lru_cache(maxsize=1024)
def _hostname(url: str) -> str | None:
    return urlsplit(url).hostname


#: The tenant's fields in a cached page's key: all but its secret.
_KEYED_TENANT_FIELDS = [
    f for f in Tenant._meta.concrete_fields if f.name != "shared_secret_encrypted"
]
#: What a cached configure page may read of the tenant: those fields and what follows from them.
TENANT_LOOKUPS = frozenset(
    [name for f in _KEYED_TENANT_FIELDS for name in (f.name, f.attname)]
    + ["pk", "get_product_type_display"]
)


def tenant_key(tenant: Tenant) -> tuple[Any, ...]:
    """The tenant's fields as a cache key part (reinstalls change base_url, display_url ...)."""
    return tuple(getattr(tenant, f.attname) for f in _KEYED_TENANT_FIELDS)


def host_script_url(request: HttpRequest, tenant: Tenant) -> str:
    """The host's JavaScript API for a page framed by the tenant's product, else "".

    Only a framed page (``xdm_e`` present) loads it. A real product gets Atlassian's CDN; a
    tenant on a loopback host (the emulator, a local product) serves its own copy at
    ``{baseUrl}/atlassian-connect/all.js``, used only when ``xdm_e`` is the tenant's origin.
    """
    xdm_e = request.GET.get("xdm_e")
    if not xdm_e:
        return ""
    if _hostname(tenant.base_url) in LOOPBACK_HOSTS:
        if _origin(xdm_e) in tenant_origins(tenant):
            return tenant.base_url.rstrip("/") + "/atlassian-connect/all.js"
        return ""
    return str(connect_settings.HOST_SCRIPT_URL or "")


def _no_store(response: HttpResponseBase) -> HttpResponseBase:
    # The page and the answers carry session tokens and settings: never cache them.
    response["Cache-Control"] = "no-store"
    return response


def _disabled() -> JsonResponse:
    return error_response("tenant_disabled", "The app is disabled for this site.", 403)


@authenticate
def _page(request: HttpRequest) -> HttpResponse:
    connect = request.connect  # type: ignore[attr-defined]
    tenant = connect.tenant
    if not tenant.enabled:
        return _disabled()
    form_class = configure_form_class()
    state = read_state(tenant)
    stored = state.stored
    # The fields come rendered (and cached: see configure_page); `form` and `rows` stay in
    # the context, built only if an overriding template asks for them.
    locale = page_locale()
    part = form_part(form_class, stored, state.stored_digest, locale)
    form = functools.cache(lambda: build_form(form_class, stored))
    changes = recent_changes(tenant, state)
    mirror = mirror_status(tenant)
    context = {
        "tenant": tenant,
        "form_html": part.html,
        "has_fields": bool(form_class.base_fields),
        "form": SimpleLazyObject(form),
        "rows": SimpleLazyObject(lambda: field_rows(form())),
        "app_settings": {"values": part.values, "version": state.version},
        "updated_at": state.updated_at.isoformat() if state.updated_at else None,
        "history_html": history_part(form_class, changes, locale),
        "history": SimpleLazyObject(lambda: describe_history(form_class, changes.instances)),
        "mirror": mirror,
        "host_script_url": host_script_url(request, tenant),
        # The page saves to where it was loaded from (the same view answers both).
        "save_url": request.path,
        "assets": asset_urls(),
    }
    # Every input of the context above (form, rows and history follow from the form part's
    # and the changes' keys; has_fields and assets from the form class and the process).
    key = None
    if part.key is not None:
        key = (
            part.key,
            state.version,
            context["updated_at"],
            changes.key,
            digest(mirror) if mirror else None,
            context["host_script_url"],
            context["save_url"],
            tenant_key(tenant),
        )
    response = render_page(
        request,
        "connect_settings/configure.html",
        context,
        key=key,
        token=lambda: connect.session_token,
        keyed_lookups={"tenant": TENANT_LOOKUPS},
    )
    response["Content-Security-Policy"] = frame_ancestors(tenant)
    return _no_store(response)  # type: ignore[return-value]


def read_json_object(request: HttpRequest, limit: int) -> dict[str, Any]:
    """The body as a JSON object of at most ``limit`` bytes (415, 413, 400 otherwise)."""
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType("The body must be application/json.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadRequest("Content-Length is not a number.", code="malformed_body") from None
    if declared > limit:
        raise BodyTooLarge(f"The body is larger than {limit} bytes.")
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise BodyTooLarge(f"The body is larger than {limit} bytes.")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("The body is not valid JSON.", code="malformed_body") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.", code="malformed_body")
    return data


def parse_save(body: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """``(values, version)`` from ``{"values": {...}, "version": n}``; version may be absent."""
    unknown = sorted(set(body) - SAVE_KEYS)
    if unknown:
        names = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise BadRequest(f"Unknown key(s) in the body: {names}.", code="invalid_field")
    if "values" not in body:
        raise BadRequest("The body has no 'values'.", code="missing_field")
    values = body["values"]
    if not isinstance(values, dict):
        raise BadRequest("'values' must be a JSON object.", code="invalid_field")
    version = body.get("version")
    if version is not None and (type(version) is not int or version < 0):
        raise BadRequest("'version' must be a whole number >= 0.", code="invalid_field")
    return values, version


@check_valid_token
def _save(request: HttpRequest) -> HttpResponseBase:
    connect = request.connect  # type: ignore[attr-defined]
    if not connect.tenant.enabled:
        return _no_store(_disabled())
    try:
        body = read_json_object(request, int(connect_settings.MAX_CONFIGURE_BODY))
        values, version = parse_save(body)
        result = save_configuration(
            connect.tenant, values, version=version, account_id=connect.account_id
        )
    except ConfigurationInvalid as err:
        answer = {"error": err.code, "message": err.message, "errors": err.errors}
        return _no_store(JsonResponse(answer, status=err.status))
    except ConfigurationConflict as err:
        answer = {"error": err.code, "message": err.message, "current": err.current}
        return _no_store(JsonResponse(answer, status=err.status))
    except ConnectError as err:
        return _no_store(exception_response(err))
    return _no_store(JsonResponse(result.as_json()))


# Framing is limited by CSP frame-ancestors to the tenant's origins instead of X-Frame-Options,
# which cannot name an origin; other pages keep Django's DENY. No CSRF: the JWT is the guard
# (third-party iframes cannot rely on cookies).
@xframe_options_exempt
@csrf_exempt
def configure(request: HttpRequest) -> HttpResponseBase:
    if request.method in ("GET", "HEAD"):
        return _page(request)
    if request.method == "POST":
        return _save(request)
    response = error_response("method_not_allowed", "Use GET or POST.", 405)
    response["Allow"] = "GET, HEAD, POST"
    return response
