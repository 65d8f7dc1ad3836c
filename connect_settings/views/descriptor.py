from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from ..descriptor import build_descriptor


@require_GET
def descriptor(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(build_descriptor(), json_dumps_params={"indent": 2})
    # Atlassian fetches it cross-origin on install; nothing in it is secret.
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "no-cache"
    return response
