"""Template context: ``connect`` (the verified request context) and ``connect_session_token``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def connect(request: HttpRequest) -> dict[str, Any]:
    context = getattr(request, "connect", None)
    if context is None:
        return {"connect": None, "connect_session_token": ""}
    return {
        "connect": context,
        # Lazy, so pages that never print it do not pay for minting it.
        "connect_session_token": SimpleLazyObject(lambda: context.session_token),
    }
