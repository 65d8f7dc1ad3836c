"""The configure page module (``/configure``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET

from .. import store
from ..decorators import authenticate
from ..models import Tenant
from ..responses import error_response


def frame_ancestors(tenant: Tenant) -> str:
    """CSP ``frame-ancestors`` naming the tenant's own origins only."""
    origins = []
    for url in (tenant.base_url, tenant.display_url):
        parts = urlsplit(url or "")
        if parts.scheme in ("http", "https") and parts.netloc:
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
    return "frame-ancestors " + (" ".join(origins) or "'none'")


# Framing is limited by CSP frame-ancestors to the tenant's origins instead of X-Frame-Options,
# which cannot name an origin; other pages keep Django's DENY.
@xframe_options_exempt
@require_GET
@authenticate
def configure(request: HttpRequest) -> HttpResponse:
    connect = request.connect  # type: ignore[attr-defined]
    if not connect.tenant.enabled:
        return error_response("tenant_disabled", "The app is disabled for this site.", 403)
    response = render(
        request,
        "connect_settings/configure.html",
        {"tenant": connect.tenant, "settings": store.all(connect.client_key)},
    )
    response["Content-Security-Policy"] = frame_ancestors(connect.tenant)
    return response
