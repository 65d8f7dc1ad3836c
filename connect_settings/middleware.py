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

from .auth import TokenKind, authenticate_request, has_token
from .conf import connect_settings
from .exceptions import AuthenticationFailed, ConnectError

SESSION_HEADER = "X-acpt"
_SESSION_HEADER_KEY = SESSION_HEADER.lower()


def _has_bearer(request: HttpRequest) -> bool:
    return request.META.get("HTTP_AUTHORIZATION", "")[:7].lower() == "bearer "


def add_session_header(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """Add a fresh session token as ``X-acpt``, unless the view set one itself."""
    connect = getattr(request, "connect", None)
    # Forge Remote callers are not our pages: they get no session token.
    if connect is None or connect.kind == TokenKind.FORGE:
        return response
    headers = getattr(response.headers, "_store", None)
    if type(headers) is dict:
        # Into ResponseHeaders' own dict (lower-case name -> (name, value)), as its
        # __setitem__ would put it. Its public API checks the name and value's charset and
        # line breaks in Python, and "in" raises a KeyError for a missing header: about
        # 2 µs of the 18 µs a session token adds to a request. A token we minted is base64url
        # and dots, nothing to check. Any other headers object gets the public API.
        headers.setdefault(_SESSION_HEADER_KEY, (SESSION_HEADER, connect.session_token))
    elif SESSION_HEADER not in response:
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
        if getattr(view_func, "connect_auth_exempt", False):
            return
        if connect_settings.FORGE_APP_ID and _has_bearer(request):
            from .forge import authenticate_forge

            request.connect_error_forge = True  # type: ignore[attr-defined]
            try:
                request.connect = authenticate_forge(request)  # type: ignore[attr-defined]
            except ConnectError as err:
                request.connect_error = err  # type: ignore[attr-defined]
            return
        if not has_token(request):
            return
        try:
            request.connect = authenticate_request(request)  # type: ignore[attr-defined]
        except AuthenticationFailed as err:
            request.connect_error = err  # type: ignore[attr-defined]

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        return add_session_header(request, response)
