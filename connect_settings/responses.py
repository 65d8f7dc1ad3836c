"""JSON error answers shared by every endpoint: ``{"error": code, "message": reason}``."""

from __future__ import annotations

from django.http import JsonResponse

from .exceptions import ConnectError
from .jwt.errors import TokenError


def error_response(code: str, message: str, status: int) -> JsonResponse:
    response = JsonResponse({"error": code, "message": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'JWT realm="connect_settings"'
    if status == 503:
        response["Retry-After"] = "5"
    return response


def exception_response(exc: ConnectError | TokenError) -> JsonResponse:
    return error_response(exc.code, exc.message, exc.status)
