"""The four lifecycle endpoints: thin HTTP over auth, payload checks and lifecycle.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from .. import lifecycle, mirror
from ..auth import PAGE_ONLY, authenticate_request
from ..exceptions import AuthenticationFailed, BadRequest, ConnectError
from ..install_verification import verify_signed_install
from ..jwt.errors import TokenError
from ..payloads import check_host_allowed, read_json_body, validate_install_payload
from ..responses import error_response, exception_response

logger = logging.getLogger("connect_settings.lifecycle")


class AfterResponse(HttpResponse):
    """A 204 that runs callbacks once the server has sent it (WSGI ``close()``).

    A failing callback is logged and never reaches the product: the answer is already out.
    """

    def __init__(self, callbacks: list[Callable[[], Any]]) -> None:
        super().__init__(status=204)
        self._after = callbacks

    def close(self) -> None:
        super().close()
        callbacks, self._after = self._after, []
        for callback in callbacks:
            try:
                callback()
            except Exception as err:  # logged, not raised: the 204 has been sent
                logger.error("After-response work failed: %s", type(err).__name__, exc_info=err)


def _done(outcome: lifecycle.Outcome, *more: Callable[[], Any]) -> HttpResponse:
    sender = outcome.sender()
    return AfterResponse([*([sender] if sender else []), *more])


@method_decorator(csrf_exempt, name="dispatch")
class LifecycleView(View):
    """POST only; each subclass verifies its own token (never a context or session token)."""

    http_method_names = ["post", "options"]
    #: ConnectMiddleware leaves these views alone: they authenticate by themselves.
    connect_auth_exempt = True

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., HttpResponseBase]:
        view = super().as_view(**initkwargs)
        view.connect_auth_exempt = True  # type: ignore[attr-defined]
        return view

    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        response = error_response("method_not_allowed", "Use POST.", 405)
        response["Allow"] = "POST"
        return response

    def post(self, request: HttpRequest) -> HttpResponseBase:
        try:
            return self.handle(request)
        except (ConnectError, TokenError) as err:
            if err.status >= 500:
                logger.warning("%s refused: %s", request.path, err.code)
            else:
                logger.info("%s refused: %s", request.path, err.code)
            return exception_response(err)

    def handle(self, request: HttpRequest) -> HttpResponseBase:
        raise NotImplementedError


class InstalledView(LifecycleView):
    def handle(self, request: HttpRequest) -> HttpResponseBase:
        payload = validate_install_payload(read_json_body(request))
        verify_signed_install(request, payload["clientKey"])
        check_host_allowed(payload["baseUrl"])
        try:
            outcome = lifecycle.install(payload)
        except IntegrityError:
            # A concurrent first install of this clientKey won the insert: update it instead.
            outcome = lifecycle.install(payload)
        return _done(outcome)


class UninstalledView(LifecycleView):
    def handle(self, request: HttpRequest) -> HttpResponseBase:
        payload = read_json_body(request)
        client_key = payload.get("clientKey")
        if not isinstance(client_key, str) or not client_key or len(client_key) > 255:
            raise BadRequest("The body has no 'clientKey'.", code="missing_field")
        verify_signed_install(request, client_key)
        return _done(lifecycle.uninstall(client_key))


class _EnableDisableView(LifecycleView):
    enabled: bool

    def handle(self, request: HttpRequest) -> HttpResponseBase:
        payload = read_json_body(request)
        connect = authenticate_request(
            request, accept=PAGE_ONLY, allow_uninstalled=not self.enabled, header_only=True
        )
        body_key = payload.get("clientKey")
        if body_key is not None and body_key != connect.client_key:
            raise AuthenticationFailed(
                "The token's issuer is not the body's clientKey.", code="issuer_mismatch"
            )
        outcome = lifecycle.set_enabled(connect.client_key, self.enabled)
        if self.enabled and outcome.tenant is not None and outcome.tenant.installed:
            # The host now accepts our (new) secret: release deliveries held since install.
            tenant = outcome.tenant
            return _done(outcome, lambda: mirror.resume_tenant(tenant))
        return _done(outcome)


class EnabledView(_EnableDisableView):
    enabled = True


class DisabledView(_EnableDisableView):
    enabled = False
