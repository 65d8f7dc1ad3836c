"""The emulated site as the Forge platform: what :class:`~.emulator.Emulator` adds for Forge.

    emu = Emulator("jira", forge_app_id="ari:cloud:ecosystem::app/<uuid>").start()
    emu.install(app_url)                       # Connect; installationId = the Forge one
    emu.invoke_remote(app_url + "/forge/settings", principal=emu.account_id, context={})
    emu.forge_events_url = app_url + "/forge/events"
    emu.move_to_forge()                        # Connect removed, no lifecycle event
    emu.reinstall_forge()                      # new installation id, avi:forge:installed:app

PROTOCOL.md section 7 is the contract: FITs signed by keys from :attr:`forge_jwks_url`, the
app's system token in ``x-forge-oauth-system``, product calls to :attr:`forge_api_base_url`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from .forge_identity import ForgeKey, check_app_id, check_environment
from .forge_remote import EVENT_TYPES, ForgeDelivery, deliver_event, forge_headers
from .forge_tokens import (
    FIT_ISSUER,
    FIT_TTL,
    OAUTH_MAX_TTL,
    Algorithm,
    jwk_set,
    mint_oauth_token,
    sign_fit,
)

if TYPE_CHECKING:
    from .products import Product
    from .state import HostState, Installation

__all__ = ["JWKS_PATH", "ForgeSite"]

JWKS_PATH = "/forge/.well-known/jwks.json"
#: The key of the app's ``trigger`` module whose endpoint receives lifecycle events.
EVENTS_MODULE_KEY = "connect-settings-lifecycle"
MAX_DELIVERIES = 200


class ForgeSite:
    """Forge for an emulated site; mixed into :class:`~.emulator.Emulator`, whose state,
    server and lifecycle lock it uses."""

    # Provided by Emulator.
    state: HostState
    product: Product
    stopping: threading.Event
    timeout: float
    _session: requests.Session
    _lifecycle_lock: threading.Lock
    if TYPE_CHECKING:
        url: str
        account_id: str

        def installation(self, key: str | None = None) -> Installation: ...

        def _install_from(self, app_url: str) -> Installation: ...

    def _init_forge(
        self,
        *,
        app_id: str | None,
        environment: str | None,
        connect_key: str | None,
        events_url: str | None,
    ) -> None:
        self._forge_deliveries: deque[ForgeDelivery] = deque(maxlen=MAX_DELIVERIES)
        identity = self.state.forge
        with self.state.lock:
            # Configuration, unlike the site's identity, wins over a state file: an app's
            # settings name the Forge app id it expects.
            if app_id is not None:
                identity.app_id = check_app_id(app_id)
            if environment is not None:
                identity.environment = check_environment(environment.upper())
            if connect_key is not None:
                identity.connect_key = connect_key
            if events_url is not None:
                identity.events_url = events_url
            self.state.save()

    # Identity ----------------------------------------------------------------------------

    @property
    def forge_app_id(self) -> str:
        """The Forge app's ARI, ``ari:cloud:ecosystem::app/<uuid>``: every FIT's ``aud``."""
        return self.state.forge.app_id

    @property
    def cloud_id(self) -> str:
        """The site's cloud id; stable across reinstalls."""
        return self.state.forge.cloud_id

    @property
    def forge_installation_id(self) -> str:
        """``ari:cloud:ecosystem::installation/<uuid>``; a Forge reinstall gives a new one."""
        return self.state.forge.installation_id

    @property
    def forge_environment(self) -> str:
        return self.state.forge.environment

    @property
    def forge_app_version(self) -> str:
        return self.state.forge.app_version

    @property
    def forge_connect_key(self) -> str | None:
        """The Forge manifest's ``app.connect.key``: whose app properties the Forge app uses."""
        return self.state.forge.connect_key

    @forge_connect_key.setter
    def forge_connect_key(self, key: str | None) -> None:
        with self.state.lock:
            self.state.forge.connect_key = key
            self.state.save()

    @property
    def forge_events_url(self) -> str | None:
        """The remote endpoint of the app's lifecycle trigger; None: events are not sent."""
        return self.state.forge.events_url

    @forge_events_url.setter
    def forge_events_url(self, url: str | None) -> None:
        with self.state.lock:
            self.state.forge.events_url = url
            self.state.save()

    @property
    def forge_moved(self) -> bool:
        """Whether the site moved from the Connect version to the Forge version."""
        return self.state.forge.moved_at is not None

    @property
    def forge_jwks_url(self) -> str:
        """What the app's Forge JWKS URL setting should hold for this site."""
        return self.url + JWKS_PATH

    @property
    def forge_api_base_url(self) -> str:
        """``app.apiBaseUrl``: ``{site}/ex/jira/<cloudId>`` (Confluence: ``/ex/confluence/``)."""
        return f"{self.url}/ex/{self.product.name}/{self.cloud_id}"

    @property
    def forge_kid(self) -> str:
        """The kid that signs FITs from now on."""
        return self._signing_key().kid

    def _signing_key(self) -> ForgeKey:
        with self.state.lock:
            created = not self.state.forge.keys
            key = self.state.forge.signing_key()
            if created:  # written once, not on every token
                self.state.save()
            return key

    def forge_jwks(self) -> dict[str, Any]:
        """The JWKS document served at :attr:`forge_jwks_url`."""
        with self.state.lock:
            self._signing_key()
            keys = list(self.state.forge.keys)
        return jwk_set(keys)

    def rotate_forge_key(self, *, retire_old: bool = False) -> str:
        """Add a signing key (its kid is returned) and sign with it from now on; the JWKS keeps
        the old keys unless ``retire_old``."""
        with self.state.lock:
            key = self.state.forge.rotate_key(retire_old=retire_old)
            self.state.save()
            return key.kid

    def describe_forge(self) -> dict[str, Any]:
        """The Forge side as JSON (no keys, no secrets)."""
        with self.state.lock:
            view = self.state.forge.summary()
        view.update(
            {
                "jwksUrl": self.forge_jwks_url,
                "apiBaseUrl": self.forge_api_base_url,
                "siteUrl": self.url,
            }
        )
        return view

    # Tokens ------------------------------------------------------------------------------

    def forge_context(
        self, module_key: str, module_type: str, extra: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The ``context`` claim of a frontend call: ``extra`` overrides or adds fields."""
        context: dict[str, Any] = {
            "cloudId": self.cloud_id,
            "siteUrl": self.url,
            "moduleKey": module_key,
            "extension": {"type": module_type},
        }
        context.update(extra or {})
        return context

    def fit_claims(
        self,
        *,
        module_key: str = "remote-endpoint",
        module_type: str = "core:endpoint",
        principal: str | None = None,
        context: Mapping[str, Any] | None = None,
        app_license: Mapping[str, Any] | None = None,
        app_overrides: Mapping[str, Any] | None = None,
        ttl: int = FIT_TTL,
        now: float | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """The claims :meth:`mint_fit` signs; an override of ``None`` removes a claim."""
        with self.state.lock:
            identity = self.state.forge
            app_id, version = identity.app_id, identity.app_version
            installation_id = identity.installation_id
            environment = {"type": identity.environment, "id": identity.environment_id}
        api_base = self.forge_api_base_url
        app: dict[str, Any] = {
            "id": app_id,
            "appVersion": version,
            "installationId": installation_id,
            "apiBaseUrl": api_base,
            "installation": {
                "id": installation_id,
                "contexts": [{"cloudId": self.cloud_id, "apiBaseUrl": api_base}],
            },
            "environment": environment,
            "module": {"type": module_type, "key": module_key},
        }
        if app_license is not None:
            app["license"] = dict(app_license)
        _apply(app, app_overrides or {})
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": FIT_ISSUER,
            "aud": app_id,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl,
            "jti": str(uuid.uuid4()),
            "app": app,
        }
        if context is not None:
            # Frontend calls only; a dict here says "this is one", its items refine it.
            claims["context"] = self.forge_context(module_key, module_type, context)
        if principal is not None:
            claims["principal"] = principal
        _apply(claims, overrides)
        return claims

    def mint_fit(
        self,
        *,
        module_key: str = "remote-endpoint",
        module_type: str = "core:endpoint",
        principal: str | None = None,
        context: Mapping[str, Any] | None = None,
        app_license: Mapping[str, Any] | None = None,
        app_overrides: Mapping[str, Any] | None = None,
        ttl: int = FIT_TTL,
        now: float | None = None,
        kid: str | None = None,
        algorithm: Algorithm = "RS256",
        signing_key: Any = None,
        **overrides: Any,
    ) -> str:
        """A Forge Invocation Token for a call to the app's remote.

        ``principal`` (an accountId) marks a UI call, ``context`` (a dict, ``{}`` for the
        defaults) a frontend call. Hostile tokens: ``**overrides`` replace top-level claims
        (``iss=``, ``aud=``, ``icLabel=``; ``jti=None`` drops one), ``app_overrides`` fields
        of ``app``; ``kid`` sets the header's kid; ``algorithm="HS256"`` signs with the JWKS
        key's public PEM as HMAC secret (or ``signing_key`` bytes); ``signing_key`` as an RSA
        private key signs with a key the JWKS does not hold.
        """
        claims = self.fit_claims(
            module_key=module_key,
            module_type=module_type,
            principal=principal,
            context=context,
            app_license=app_license,
            app_overrides=app_overrides,
            ttl=ttl,
            now=now,
            **overrides,
        )
        key = self._signing_key()
        return sign_fit(claims, key, kid=kid, algorithm=algorithm, signing_key=signing_key)

    def system_token(self, ttl: int = OAUTH_MAX_TTL, *, now: float | None = None) -> str:
        """The app's system token (``x-forge-oauth-system``): valid on the ``/ex/`` API for
        this site and Forge installation, ``ttl`` seconds (at most 4 hours)."""
        return self._oauth_token("system", self.forge_app_id, ttl, now)

    def user_token(
        self, account_id: str | None = None, ttl: int = OAUTH_MAX_TTL, *, now: float | None = None
    ) -> str:
        """A user token (``x-forge-oauth-user``) for ``account_id`` (default: the site's user)."""
        subject = account_id or self.account_id
        return self._oauth_token("user", subject, ttl, now)

    def _oauth_token(self, kind: Any, subject: str, ttl: int, now: float | None) -> str:
        with self.state.lock:
            identity = self.state.forge
            return mint_oauth_token(
                identity.token_secret,
                kind=kind,
                subject=subject,
                app_id=identity.app_id,
                cloud_id=identity.cloud_id,
                installation_id=identity.installation_id,
                ttl=ttl,
                now=now,
            )

    def forge_properties_url(self, prop: str | None = None) -> str:
        """The app properties API as the Forge app reaches it, under ``apiBaseUrl``."""
        key = self.forge_connect_key
        if key is None:
            raise LookupError("The Forge app has no app.connect.key yet: install its Connect app.")
        url = f"{self.forge_api_base_url}{self.product.context_path}/rest/atlassian-connect/1"
        url += f"/addons/{quote(key, safe='')}/properties"
        return url if prop is None else f"{url}/{quote(prop, safe='')}"

    # Calls to the remote -----------------------------------------------------------------

    def invoke_remote(
        self,
        url: str,
        method: str = "GET",
        *,
        json: Any = None,
        principal: str | None = None,
        context: Mapping[str, Any] | None = None,
        module_key: str = "remote-endpoint",
        module_type: str = "core:endpoint",
        system_token: bool = True,
        user_token: bool = False,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        fit_overrides: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """Call the app's remote as ``invokeRemote`` does: a fresh FIT, the system token, a
        user token only for a ``principal`` when ``user_token``, B3 trace headers."""
        fit = self.mint_fit(
            module_key=module_key,
            module_type=module_type,
            principal=principal,
            context=context,
            **dict(fit_overrides or {}),
        )
        sent = forge_headers(
            fit,
            system_token=self.system_token() if system_token else None,
            user_token=self.user_token(principal) if principal and user_token else None,
        )
        sent.update(headers or {})
        return self._session.request(
            method,
            url,
            json=json,
            headers=sent,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=False,
        )

    def forge_event(self, event_type: str = "avi:forge:installed:app") -> dict[str, Any]:
        """The body of a Forge lifecycle event for this site's current installation."""
        if event_type not in EVENT_TYPES:
            known = ", ".join(EVENT_TYPES)
            raise ValueError(f"Unknown Forge event {event_type!r}: one of {known}.")
        with self.state.lock:
            identity = self.state.forge
            app: dict[str, Any] = {"id": identity.app_uuid, "version": identity.app_version}
            if identity.connect_key:
                installed = self.state.installations.get(identity.connect_key)
                app["name"] = installed.name if installed else identity.connect_key
            event: dict[str, Any] = {
                "eventType": event_type,
                "id": identity.installation_uuid,
                "context": f"ari:cloud:{self.product.name}::site/{identity.cloud_id}",
                "app": app,
                "environment": {"id": identity.environment_uuid},
            }
        account = self.account_id
        event["installerAccountId"] = account
        if event_type == "avi:forge:upgraded:app":
            # Atlassian's table says installerAccountId, its example upgraderAccountId: send both.
            event["upgraderAccountId"] = account
        return event

    def deliver_forge_event(
        self,
        endpoint_url: str | None = None,
        event_type: str = "avi:forge:installed:app",
        *,
        wrapped: bool = False,
        attempts: int = 4,
        retry_delay: float = 60.0,
        timeout: float = 5.0,
    ) -> list[ForgeDelivery]:
        """POST a lifecycle event to the remote (default: :attr:`forge_events_url`) as Forge
        does: a fresh FIT per attempt, the system token, retries on non-2xx or no answer
        within ``timeout``, ``retry_delay`` apart, wrapped with a ``retryContext``. The first
        attempt is the bare event unless ``wrapped``. Returns every attempt."""
        url = endpoint_url or self.forge_events_url
        if not url:
            raise LookupError("No Forge events endpoint: pass one or set forge_events_url.")
        event = self.forge_event(event_type)

        def mint() -> tuple[str, str]:
            claims = self.fit_claims(module_key=EVENTS_MODULE_KEY, module_type="core:endpoint")
            return sign_fit(claims, self._signing_key()), str(claims["jti"])

        results = deliver_event(
            self._session,
            url,
            event,
            mint=mint,
            system_token=self.system_token,
            wrapped=wrapped,
            attempts=attempts,
            retry_delay=retry_delay,
            timeout=timeout,
            stopping=self.stopping,
        )
        with self.state.lock:
            self._forge_deliveries.extend(results)
        return results

    @property
    def forge_deliveries(self) -> list[ForgeDelivery]:
        """Every Forge event delivery attempt so far, oldest first."""
        with self.state.lock:
            return list(self._forge_deliveries)

    # The move and the Forge lifecycle ----------------------------------------------------

    def move_to_forge(self, key: str | None = None) -> Installation:
        """Move the site from the Connect version to the Forge version, as Atlassian does: the
        Connect installation goes **without** a lifecycle event (its JWTs are refused from now
        on); the Forge installation, its id and the app properties stay."""
        with self._lifecycle_lock:
            installation = self.installation(key or self.forge_connect_key)
            with self.state.lock:
                self.state.installations.pop(installation.key, None)
                self.state.forge.connect_key = installation.key
                self.state.forge.moved_at = time.time()
                self.state.save()
            return installation

    def reinstall_forge(self) -> list[ForgeDelivery]:
        """A new Forge installation (new installation id, same cloud id), then
        ``avi:forge:installed:app`` to :attr:`forge_events_url` if one is set.

        A Connect version still installed gets ``installed`` with the new ``installationId``
        and a new shared secret, as a Connect app registered on Forge does.
        """
        with self._lifecycle_lock:
            with self.state.lock:
                self.state.forge.new_installation()
                self.state.save()
                connect = self.state.installations.get(self.state.forge.connect_key or "")
            if connect is not None:
                self._install_from(connect.descriptor_url)
        if not self.forge_events_url:
            return []
        return self.deliver_forge_event(event_type="avi:forge:installed:app")

    def upgrade_forge(self) -> list[ForgeDelivery]:
        """A major version upgrade: the app version's major number goes up, then
        ``avi:forge:upgraded:app`` to :attr:`forge_events_url` if one is set."""
        with self.state.lock:
            self.state.forge.next_major_version()
            self.state.save()
        if not self.forge_events_url:
            return []
        return self.deliver_forge_event(event_type="avi:forge:upgraded:app")


def _apply(target: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    for name, value in overrides.items():
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
