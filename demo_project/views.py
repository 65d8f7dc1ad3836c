"""The demo's own endpoints, showing the decorators on an integrator's views."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from connect_settings import store
from connect_settings.decorators import check_valid_token, forge_remote


@require_GET
@check_valid_token
def settings_json(request: HttpRequest) -> JsonResponse:
    """The tenant's settings as JSON for the page's AJAX calls (session token required)."""
    return JsonResponse({"settings": store.all(request.connect.client_key)})


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Unauthenticated; the baseline against which authentication overhead is measured."""
    return JsonResponse({"ok": True})


@require_GET
@forge_remote
def forge_settings(request: HttpRequest) -> JsonResponse:
    """What a Forge front end (through Forge Remote) reads: the same tenant's settings."""
    connect = request.connect
    return JsonResponse(
        {
            "settings": store.all(connect.client_key),
            "installationId": connect.installation_id,
            "cloudId": connect.cloud_id,
        }
    )
