"""Authenticates requests that carry a Connect token and adds a fresh session token.

The middleware never rejects a request by itself: it sets ``request.connect`` (or
``request.connect_error``) and leaves the decision to the view's decorator. Views marked
``connect_auth_exempt`` (the lifecycle endpoints, which verify their own tokens) are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

from .auth import authenticate_request, has_token
from .exceptions import AuthenticationFailed

SESSION_HEADER = "X-acpt"


def add_session_header(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    connect = getattr(request, "connect", None)
    if connect is not None and SESSION_HEADER not in response:
        response[SESSION_HEADER] = connect.session_token
    return response


class ConnectMiddleware(MiddlewareMixin):
    def process_request(self, request: HttpRequest) -> None:
        request.connect = None  # type: ignore[attr-defined]
        request.connect_error = None  # type: ignore[attr-defined]

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        if getattr(view_func, "connect_auth_exempt", False) or not has_token(request):
            return
        try:
            request.connect = authenticate_request(request)  # type: ignore[attr-defined]
        except AuthenticationFailed as err:
            request.connect_error = err  # type: ignore[attr-defined]

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        return add_session_header(request, response)
