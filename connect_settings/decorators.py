"""View decorators: ``authenticate`` (page loads, webhooks) and ``check_valid_token`` (AJAX).

Both are thin over :mod:`connect_settings.auth`, reuse what :class:`ConnectMiddleware` already
verified, exempt the view from CSRF (the token is the guard: third-party iframes cannot rely
on cookies) and add a fresh session token to the response as ``X-acpt``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, overload

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from .auth import ALL_KINDS, PAGE_ONLY, ConnectContext, TokenKind, authenticate_request
from .exceptions import AuthenticationFailed, ConnectError
from .middleware import add_session_header
from .responses import exception_response

V = TypeVar("V", bound=Callable[..., Any])


def _resolve(request: HttpRequest, accept: frozenset[TokenKind]) -> ConnectContext:
    connect = getattr(request, "connect", None)
    if connect is not None:
        if connect.kind not in accept:
            raise AuthenticationFailed(
                "This endpoint needs a token signed for this exact request.",
                code="context_token_not_allowed",
            )
        return connect
    error = getattr(request, "connect_error", None)
    if error is not None:
        raise error
    return authenticate_request(request, accept=accept)


def _guard(view: V, accept: frozenset[TokenKind]) -> V:
    if iscoroutinefunction(view):

        @wraps(view)
        async def async_wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            try:
                request.connect = await sync_to_async(_resolve)(request, accept)  # type: ignore[attr-defined]
            except AuthenticationFailed as err:
                return exception_response(err)
            response = await view(request, *args, **kwargs)
            if hasattr(request, "connect_error"):
                return response  # ConnectMiddleware ran: it adds the header on the way out
            return add_session_header(request, response)

        markcoroutinefunction(async_wrapped)
        return csrf_exempt(async_wrapped)  # type: ignore[return-value]

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            request.connect = _resolve(request, accept)  # type: ignore[attr-defined]
        except AuthenticationFailed as err:
            return exception_response(err)
        response = view(request, *args, **kwargs)
        if hasattr(request, "connect_error"):
            return response  # ConnectMiddleware ran: it adds the header on the way out
        return add_session_header(request, response)

    return csrf_exempt(wrapped)  # type: ignore[return-value]


@overload
def authenticate(view: V) -> V: ...
@overload
def authenticate(view: None = None) -> Callable[[V], V]: ...
def authenticate(view: V | None = None) -> V | Callable[[V], V]:
    """Require a host token whose qsh matches this request (ACE's ``addon.authenticate()``).

    Context JWTs and session tokens are refused with ``context_token_not_allowed``.
    """
    if view is None:
        return lambda v: _guard(v, PAGE_ONLY)
    return _guard(view, PAGE_ONLY)


@overload
def check_valid_token(view: V) -> V: ...
@overload
def check_valid_token(view: None = None, *, allow_context: bool = True) -> Callable[[V], V]: ...
def check_valid_token(view: V | None = None, *, allow_context: bool = True) -> V | Callable[[V], V]:
    """Accept our app session tokens (ACE's ``checkValidToken()``), and host context JWTs
    unless ``allow_context=False``. No computed qsh is needed for either."""
    accept = ALL_KINDS if allow_context else ALL_KINDS - {TokenKind.CONTEXT}
    if view is None:
        return lambda v: _guard(v, accept)
    return _guard(view, accept)


def _resolve_forge(request: HttpRequest) -> ConnectContext:
    from .forge import authenticate_forge

    connect = getattr(request, "connect", None)
    if connect is not None and connect.kind == TokenKind.FORGE:
        return connect
    error = getattr(request, "connect_error", None)
    if error is not None and getattr(request, "connect_error_forge", False):
        raise error
    return authenticate_forge(request)


def forge_remote(view: V) -> V:
    """Require a valid Forge Invocation Token (Forge Remote) and set ``request.connect`` to the
    tenant it maps to, with ``installation_id``, ``cloud_id``, ``account_id`` (the principal)
    and ``system_token``. 401 only for an invalid FIT; other failures have their own status.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            request.connect = _resolve_forge(request)  # type: ignore[attr-defined]
        except ConnectError as err:
            return exception_response(err)
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapped)  # type: ignore[return-value]
