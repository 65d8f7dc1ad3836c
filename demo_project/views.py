"""The demo's own endpoints, showing the decorators on an integrator's views."""

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from connect_settings import store
from connect_settings.conf import connect_settings
from connect_settings.decorators import check_valid_token, forge_remote
from connect_settings.forms import configure_form_class, redacted_secret, secret_field_names
from connect_settings.models import Tenant


def _settings_for_pages(tenant: Tenant) -> dict[str, Any]:
    """The tenant's settings with the configure form's secret fields redacted: session tokens,
    context JWTs and FITs are held by any user of the site, not only by its admins."""
    settings = store.all(tenant)
    values = settings.get(connect_settings.CONFIGURE_SETTING_KEY)
    if isinstance(values, dict):
        secrets = secret_field_names(configure_form_class())
        settings[connect_settings.CONFIGURE_SETTING_KEY] = {
            name: redacted_secret(value) if name in secrets else value
            for name, value in values.items()
        }
    return settings


@require_GET
@check_valid_token
def settings_json(request: HttpRequest) -> JsonResponse:
    """The tenant's settings as JSON for the page's AJAX calls (session token required)."""
    return JsonResponse({"settings": _settings_for_pages(request.connect.tenant)})


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
            "settings": _settings_for_pages(connect.tenant),
            "installationId": connect.installation_id,
            "cloudId": connect.cloud_id,
        }
    )
