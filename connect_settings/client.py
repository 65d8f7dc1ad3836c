"""The outgoing host client: product REST calls signed as the app (ACE's ``httpClient``).

Every call carries a fresh app JWT (HS256 with the tenant's current secret, ``iss`` = app
key, qsh over the exact URL relative to the product's base path, so Confluence's ``/wiki``
works), a timeout and a versioned User-Agent. Idempotent calls are retried on 429/502/503/504
by urllib3's ``Retry``, honouring ``Retry-After`` within a bounded total wait.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import requests
from django.utils import timezone
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from . import __version__
from .conf import connect_settings
from .exceptions import ConnectError
from .jwt.canonical import query_string_hash
from .jwt.tokens import mint_hs256
from .models import Tenant

__all__ = [
    "BoundedRetry",
    "ForgeClient",
    "HostClient",
    "HostError",
    "HostUnavailable",
    "client_for",
]

USER_AGENT = f"django-connect-settings/{__version__} (+requests/{requests.__version__})"
APP_TOKEN_TTL = 180


class HostError(ConnectError):
    """The host answered with an error status. ``response`` is attached for inspection."""

    code = "host_error"
    status = 502

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        reason: str = "",
        response: requests.Response | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code
        self.reason = reason
        self.response = response
        self.retry_after = retry_after


class HostUnavailable(HostError):
    """The host could not be reached (refused, timed out, dropped)."""

    code = "host_unavailable"
    status = 503


class BoundedRetry(Retry):
    """urllib3's Retry with a bound on the total time spent waiting.

    A ``Retry-After`` longer than ``max_wait`` (or one that would cross the budget) is not
    waited out and not shortened either: the retrying stops and the 429/503 goes back to the
    caller with ``retry_after``, so a queue can come back when the host asked.
    """

    def __init__(
        self, *args: Any, max_wait: float = 30.0, started: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_wait = max_wait
        self.started = started

    def new(self, **kw: Any) -> BoundedRetry:
        kw.setdefault("max_wait", self.max_wait)
        kw.setdefault("started", self.started if self.started is not None else time.monotonic())
        return super().new(**kw)  # type: ignore[return-value]

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        *args: Any,
        response: Any = None,
        **kwargs: Any,
    ) -> Retry:
        new = cast(BoundedRetry, super().increment(method, url, *args, response=response, **kwargs))
        spent = time.monotonic() - (new.started or time.monotonic())
        wait = new.get_retry_after(response) if response is not None else None
        if wait is None:
            wait = new.get_backoff_time()
        if spent + wait > self.max_wait:
            raise MaxRetryError(None, url or "", reason=None)  # type: ignore[arg-type]
        return new


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


_lock = threading.Lock()
_session: requests.Session | None = None


def shared_session() -> requests.Session:
    """One pooled session per process, built from settings (rebuilt when they change)."""
    global _session
    with _lock:
        if _session is None:
            retry = BoundedRetry(
                total=int(connect_settings.HTTP_RETRIES),
                connect=int(connect_settings.HTTP_RETRIES),
                read=0,
                status_forcelist=(429, 502, 503, 504),
                allowed_methods=frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}),
                backoff_factor=float(connect_settings.HTTP_BACKOFF_FACTOR),
                backoff_max=30,
                backoff_jitter=float(connect_settings.HTTP_BACKOFF_FACTOR) / 2,
                respect_retry_after_header=True,
                raise_on_status=False,
                max_wait=float(connect_settings.HTTP_RETRY_MAX_WAIT),
            )
            session = requests.Session()
            adapter = HTTPAdapter(max_retries=retry, pool_connections=16, pool_maxsize=16)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            session.headers["User-Agent"] = USER_AGENT
            _session = session
        return _session


def reset() -> None:
    global _session
    with _lock:
        if _session is not None:
            _session.close()
        _session = None


class HostClient:
    """Calls one tenant's product REST API as the app.

    ``path`` is relative to the tenant's base URL (``/rest/api/3/myself``); for Confluence
    the base URL already ends in ``/wiki``.
    """

    def __init__(self, tenant: Tenant, *, timeout: float | None = None) -> None:
        self.tenant = tenant
        self.base_url = tenant.base_url
        self.timeout = float(connect_settings.HTTP_TIMEOUT if timeout is None else timeout)

    def _sign(self, prepared: requests.PreparedRequest) -> None:
        parts = urlsplit(prepared.url or "")
        qsh = query_string_hash(
            prepared.method or "GET", parts.path, parts.query, self.tenant.base_path
        )
        token = mint_hs256(
            {"iss": connect_settings.APP_KEY, "qsh": qsh, "aud": [self.tenant.client_key]},
            self.tenant.shared_secret,
            ttl=APP_TOKEN_TTL,
        )
        prepared.headers["Authorization"] = f"JWT {token}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] | None = None,
    ) -> requests.Response:
        """Send a signed request; raise HostError / HostUnavailable unless the status is
        2xx (or in ``expect``)."""
        if not path.startswith("/"):
            raise ValueError("path must start with '/' (relative to the tenant's base URL)")
        session = shared_session()
        request = requests.Request(
            method.upper(),
            self.base_url + path,
            params=params,
            json=json,
            data=data,
            headers=headers or {},
        )
        prepared = session.prepare_request(request)
        self._sign(prepared)
        try:
            response = session.send(prepared, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as err:
            raise HostUnavailable(
                f"{method.upper()} {path} could not reach the host: {type(err).__name__}",
                reason=type(err).__name__,
            ) from err
        if 200 <= response.status_code < 300 or (expect and response.status_code in expect):
            return response
        raise HostError(
            f"{method.upper()} {path} answered {response.status_code} {response.reason}",
            status_code=response.status_code,
            reason=response.reason or "",
            response=response,
            retry_after=_retry_after(response),
            code="host_rate_limited" if response.status_code == 429 else None,
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


class ForgeClient(HostClient):
    """Product REST calls from Forge Remote: ``Authorization: Bearer <app system token>`` to
    the installation's ``apiBaseUrl`` (Confluence paths under ``/wiki``). Same pooling,
    retries and errors as :class:`HostClient`; ``path`` is the same product path."""

    def __init__(
        self, api_base_url: str, system_token: str, *, timeout: float | None = None
    ) -> None:
        self.tenant = None  # type: ignore[assignment]
        base = api_base_url.rstrip("/")
        # apiBaseUrl is .../ex/confluence/<cloudId> for Confluence, whose REST lives under /wiki.
        self.base_url = base + "/wiki" if "/ex/confluence/" in base else base
        self._token = system_token
        self.timeout = float(connect_settings.HTTP_TIMEOUT if timeout is None else timeout)

    def _sign(self, prepared: requests.PreparedRequest) -> None:
        prepared.headers["Authorization"] = f"Bearer {self._token}"

    def __repr__(self) -> str:
        return f"<ForgeClient {self.base_url}>"


def client_for(tenant: Tenant) -> HostClient | None:
    """How to reach the tenant's host now: through Forge while we hold a valid system token
    (it keeps working after the Connect version is gone), else as the Connect app while it
    is installed; None when neither is possible."""
    from .models import ForgeInstallation

    soon = timezone.now() + timedelta(seconds=60)
    forge = (
        ForgeInstallation.objects.filter(tenant_id=tenant.pk, system_token_expires_at__gt=soon)
        .exclude(api_base_url="")
        .order_by("-last_seen_at")
        .first()
    )
    token = forge.system_token if forge is not None else None
    if forge is not None and token:
        return ForgeClient(forge.api_base_url, token)
    return HostClient(tenant) if tenant.installed else None
