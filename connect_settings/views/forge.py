"""Forge lifecycle events delivered to the remote (``avi:forge:installed:app``, ...).

Forge gives the endpoint 5 s and retries any non-2xx or timeout every 60 s up to 4 times:
so the answer is a quick 204 once the FIT verifies, and the work (mapping the installation
to its tenant, re-mirroring) runs after the answer is sent. Redeliveries are recognised by
``jti`` (the same request twice) and by event id once its work is done.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import caches
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from .. import mirror, signals
from ..conf import connect_settings
from ..exceptions import AuthenticationFailed, ConnectError
from ..forge import (
    SYSTEM_HEADER,
    UnknownInstallation,
    bearer_token,
    resolve_installation,
    verify_fit,
)
from ..jwt.errors import TokenError
from ..models import Tenant
from ..payloads import read_json_body
from ..responses import error_response, exception_response
from .lifecycle import AfterResponse

logger = logging.getLogger("connect_settings.forge")

EVENTS = frozenset({"avi:forge:installed:app", "avi:forge:upgraded:app"})
#: Forge retries for about 4 minutes; remember what we saw for a day.
DEDUPE_SECONDS = 24 * 3600


def _cache() -> Any:
    return caches[connect_settings.TENANT_CACHE]


def handle_event(
    claims: dict[str, Any], event: dict[str, Any], system_token: str | None, event_key: str
) -> None:
    """The work behind an event: learn the installation's tenant and re-send its mirrored
    settings through Forge. Marked done only when it succeeded, so a retry redoes a failure."""
    try:
        mapping = resolve_installation(claims, system_token)
    except UnknownInstallation:
        logger.warning(
            "Forge event %s for an installation no tenant matches yet", event.get("eventType")
        )
        return
    tenant: Tenant = mapping.tenant
    mirror.remirror_tenant(tenant)
    signals.forge_event.send_robust(
        sender=Tenant,
        tenant=tenant,
        event_type=event.get("eventType"),
        installation_id=mapping.installation_id,
    )
    _cache().set(f"connect_settings:forge:event-done:{event_key}", 1, DEDUPE_SECONDS)


@method_decorator(csrf_exempt, name="dispatch")
class ForgeEventsView(View):
    http_method_names = ["post"]
    connect_auth_exempt = True

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        view = super().as_view(**initkwargs)
        view.connect_auth_exempt = True
        return view

    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        response = error_response("method_not_allowed", "Use POST.", 405)
        response["Allow"] = "POST"
        return response

    def post(self, request: HttpRequest) -> HttpResponseBase:
        try:
            token = bearer_token(request)
            if token is None:
                raise AuthenticationFailed(
                    "The request carries no Forge invocation token.", code="missing_token"
                )
            claims = verify_fit(token)
            body = read_json_body(request)
        except (ConnectError, TokenError) as err:
            return exception_response(err)
        # Retries arrive wrapped as {"payload": {...}, "retryContext": {...}}.
        event = body["payload"] if isinstance(body.get("payload"), dict) else body
        event_type = event.get("eventType")
        if event_type not in EVENTS:
            return AfterResponse([])  # not ours to handle; 2xx so Forge does not retry
        cache = _cache()
        if not cache.add(f"connect_settings:forge:jti:{claims['jti']}", 1, DEDUPE_SECONDS):
            return AfterResponse([])  # the very same request again
        event_id = event.get("id") if isinstance(event.get("id"), str) else ""
        event_key = f"{event_type}:{event_id or claims['app']['installationId']}"
        if cache.get(f"connect_settings:forge:event-done:{event_key}"):
            return AfterResponse([])
        system_token = request.META.get(SYSTEM_HEADER) or None
        return AfterResponse([lambda: handle_event(claims, event, system_token, event_key)])
