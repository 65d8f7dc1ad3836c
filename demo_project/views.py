"""The demo's own endpoints, showing the decorators on an integrator's views."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from connect_settings import store
from connect_settings.decorators import check_valid_token


@require_GET
@check_valid_token
def settings_json(request: HttpRequest) -> JsonResponse:
    """The tenant's settings as JSON for the page's AJAX calls (session token required)."""
    return JsonResponse({"settings": store.all(request.connect.client_key)})


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Unauthenticated; the baseline against which authentication overhead is measured."""
    return JsonResponse({"ok": True})
