"""The emulated Jira or Confluence Cloud site: the Python API over the state and the server.

    emu = Emulator(product="jira").start()
    emu.install("http://127.0.0.1:8000")      # fetch, validate, signed "installed", "enabled"
    emu.page_url()                            # the configure page's iframe URL, freshly signed
    emu.properties()                          # what the app stored through the REST API
    emu.stop()

Lifecycle operations run one at a time (like the product's app manager), outside the state
lock, so an app may call the emulator's REST API while it handles a callback.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from .. import __version__
from .callbacks import InstallError, install_failure_message, post_callback
from .descriptor import DescriptorError, descriptor_url_for, fetch_descriptor, validate_descriptor
from .faults import Fault, FaultPlan
from .forge import ForgeSite
from .pages import find_module, page_url
from .products import Product, get_product
from .properties import PropertiesApi
from .state import HostState, Installation, LifecycleEvent
from .tokens import app_token, context_token, lifecycle_token, signed_install_token

__all__ = ["AppNotInstalled", "DescriptorError", "Emulator", "InstallError"]

KEY_PATH = "/keys"


class AppNotInstalled(LookupError):
    """No such app is installed (or the app to act on is ambiguous)."""

    @property
    def message(self) -> str:
        return str(self.args[0])


def _digits(seed: str, count: int) -> str:
    return str(int(hashlib.sha256(seed.encode()).hexdigest(), 16))[:count]


class Emulator(ForgeSite):
    """A local Atlassian Cloud site on ``http://127.0.0.1:<port>``.

    ``port=0`` picks a free port. ``state_file`` keeps installations, secrets, properties and
    the signing keys across restarts. Call :meth:`start` before anything that needs the URL.
    The ``forge_*`` options configure the Forge version of the app (see :mod:`.forge`).
    """

    def __init__(
        self,
        product: str = "jira",
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        state_file: str | Path | None = None,
        client_key: str | None = None,
        account_id: str | None = None,
        timeout: float = 10.0,
        forge_app_id: str | None = None,
        forge_environment: str | None = None,
        forge_connect_key: str | None = None,
        forge_events_url: str | None = None,
    ) -> None:
        self.product: Product = get_product(product)
        self.state = HostState.open(
            self.product.name,
            Path(state_file) if state_file else None,
            client_key=client_key,
            account_id=account_id,
        )
        self.timeout = timeout
        self.faults = FaultPlan(default_path=f"{self.product.context_path}/rest/")
        self._bind = (host, port)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        #: Set by :meth:`stop`; delayed answers wait on it so that stopping is prompt.
        self.stopping = threading.Event()
        self._lifecycle_lock = threading.Lock()
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"connect_settings-host/{__version__}"
        self.properties_api: PropertiesApi | None = None
        self._init_forge(
            app_id=forge_app_id,
            environment=forge_environment,
            connect_key=forge_connect_key,
            events_url=forge_events_url,
        )

    # Server ------------------------------------------------------------------------------

    def start(self) -> Emulator:
        from .server import make_server  # the server imports this module's types

        if self._server is not None:
            return self
        self.stopping.clear()
        self._server = make_server(self, *self._bind)
        self.properties_api = PropertiesApi(
            self.state, base_url=self.base_url, context_path=self.product.context_path
        )
        # A short poll interval makes stop() (and so every test teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"connect-host-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        self._session.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("The emulator is not running: call start() first.")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The site's origin, where the admin page lives: ``http://127.0.0.1:<port>``."""
        return f"http://{self._bind[0]}:{self.port}"

    @property
    def base_url(self) -> str:
        """The product's base URL as apps see it (Confluence's ends in ``/wiki``)."""
        return self.url + self.product.context_path

    @property
    def key_server_url(self) -> str:
        """What the app's ``INSTALL_KEY_SERVERS`` should hold: ``GET <this>/<kid>`` = PEM."""
        return self.url + KEY_PATH

    @property
    def kid(self) -> str:
        return self.state.kid

    @property
    def public_key_pem(self) -> bytes:
        return self.state.public_pem

    @property
    def client_key(self) -> str:
        return self.state.client_key

    @property
    def account_id(self) -> str:
        return self.state.account_id

    # Installations -----------------------------------------------------------------------

    def installations(self) -> list[Installation]:
        with self.state.lock:
            return list(self.state.installations.values())

    def installation(self, key: str | None = None) -> Installation:
        """The installed app ``key``; without a key, the only installed app."""
        with self.state.lock:
            if key is not None:
                try:
                    return self.state.installations[key]
                except KeyError:
                    raise AppNotInstalled(f"The app {key!r} is not installed.") from None
            apps = list(self.state.installations.values())
        if len(apps) == 1:
            return apps[0]
        if not apps:
            raise AppNotInstalled("No app is installed.")
        names = ", ".join(sorted(a.key for a in apps))
        raise AppNotInstalled(f"Several apps are installed ({names}): name one.")

    def shared_secret(self, key: str | None = None) -> str:
        return self.installation(key).shared_secret

    def install(self, app_url: str) -> Installation:
        """Install (or upgrade) the app whose base or descriptor URL is ``app_url``.

        Raises :class:`DescriptorError` for a descriptor that cannot be fetched or is invalid,
        :class:`InstallError` when the app does not answer ``installed`` with 2xx.
        """
        with self._lifecycle_lock:
            return self._install_from(app_url)

    def _install_from(self, app_url: str) -> Installation:
        """:meth:`install` for a caller that holds the lifecycle lock."""
        url = descriptor_url_for(app_url)
        descriptor = fetch_descriptor(url, session=self._session, timeout=self.timeout)
        problems = validate_descriptor(descriptor)
        if problems:
            raise DescriptorError(url, problems)
        return self._install(url, descriptor)

    def reinstall(self, key: str | None = None) -> Installation:
        """Fetch the descriptor again and reinstall: the app receives a new shared secret."""
        return self.install(self.installation(key).descriptor_url)

    def uninstall(self, key: str | None = None) -> list[LifecycleEvent]:
        """``disabled`` (if enabled) then the signed ``uninstalled``; the app goes whatever it
        answers. Its properties stay, as on the product."""
        with self._lifecycle_lock:
            installation = self.installation(key)
            events = []
            if installation.enabled:
                events.append(self._callback(installation, "disabled"))
            events.append(self._callback(installation, "uninstalled"))
            with self.state.lock:
                self.state.installations.pop(installation.key, None)
                self.state.save()
            return [e for e in events if e is not None]

    def enable(self, key: str | None = None) -> LifecycleEvent | None:
        return self._set_enabled(key, True)

    def disable(self, key: str | None = None) -> LifecycleEvent | None:
        return self._set_enabled(key, False)

    def _set_enabled(self, key: str | None, enabled: bool) -> LifecycleEvent | None:
        with self._lifecycle_lock:
            installation = self.installation(key)
            if installation.enabled == enabled:
                return None
            with self.state.lock:
                installation.enabled = enabled
                self.state.save()
            # The callback is a notification: the app cannot veto it.
            return self._callback(installation, "enabled" if enabled else "disabled")

    def _install(self, descriptor_url: str, descriptor: dict[str, Any]) -> Installation:
        key = str(descriptor["key"])
        with self.state.lock:
            previous = self.state.installations.get(key)
            # The site's Connect app is registered on Forge: its install payload carries the
            # Forge installation id. Any other app keeps an id of its own.
            forge_app = self.state.forge.connect_key in (None, key)
            if forge_app:
                installation_id = self.state.forge.installation_id
            elif previous:
                installation_id = previous.installation_id
            else:
                installation_id = f"ari:cloud:ecosystem::installation/{uuid.uuid4()}"
        installation = Installation(
            key=key,
            descriptor_url=descriptor_url,
            descriptor=descriptor,
            shared_secret=secrets.token_urlsafe(48),
            installation_id=installation_id,
            enabled=previous.enabled if previous else True,
        )
        event = self._callback(installation, "installed")
        if event is None or not event.ok:
            # A failed upgrade leaves the installed version (and its secret) in place.
            result_status = event.status if event else None
            raise InstallError(
                event.detail if event else "The descriptor declares no installed callback.",
                status=result_status,
            )
        with self.state.lock:
            self.state.installations[key] = installation
            self.state.app_properties(key)
            if forge_app:
                self.state.forge.connect_key = key
                self.state.forge.moved_at = None
            self.state.save()
        if installation.enabled:
            self._callback(installation, "enabled")
        return installation

    def _payload(self, installation: Installation, event: str) -> dict[str, Any]:
        seed = f"{self.client_key}/{installation.key}"
        return {
            "key": installation.key,
            "clientKey": self.client_key,
            "sharedSecret": installation.shared_secret,
            "baseUrl": self.base_url,
            "displayUrl": self.base_url,
            "displayUrlServicedeskHelpCenter": self.base_url,
            "productType": self.product.name,
            "description": f"Atlassian {self.product.display_name} at {self.base_url}",
            "serverVersion": self.product.server_version,
            "pluginsVersion": self.product.plugins_version,
            "serviceEntitlementNumber": _digits(seed + "/sen", 8),
            "entitlementId": str(uuid.uuid5(uuid.NAMESPACE_URL, seed + "/entitlement")),
            "entitlementNumber": "E-" + _digits(seed + "/en", 12),
            "oauthClientId": _digits(seed + "/oauth", 16),
            "eventType": event,
            "installationId": installation.installation_id,
        }

    def _callback(self, installation: Installation, event: str) -> LifecycleEvent | None:
        """Send one lifecycle event if the descriptor declares it; record what happened."""
        lifecycle = installation.descriptor.get("lifecycle") or {}
        relative = lifecycle.get(event)
        if not isinstance(relative, str):
            return None
        url = installation.app_base_url + relative
        descriptor_base = str(installation.descriptor["baseUrl"])
        if event in ("installed", "uninstalled"):
            token = signed_install_token(
                self.state.private_key,
                self.kid,
                client_key=self.client_key,
                descriptor_base_url=descriptor_base,
                callback_url=url,
            )
        else:
            token = lifecycle_token(
                installation.shared_secret,
                client_key=self.client_key,
                descriptor_base_url=descriptor_base,
                callback_url=url,
            )
        payload = self._payload(installation, event)
        result = post_callback(self._session, url, payload, token, timeout=self.timeout)
        detail = result.detail
        if event == "installed" and not result.ok:
            detail = install_failure_message(result)
        record = LifecycleEvent(installation.key, event, url, result.status, result.ok, detail)
        with self.state.lock:
            self.state.events.append(record)
        return record

    @property
    def events(self) -> list[LifecycleEvent]:
        """The lifecycle callbacks sent so far, oldest first."""
        with self.state.lock:
            return list(self.state.events)

    # Pages and tokens --------------------------------------------------------------------

    def page_url(
        self,
        key: str | None = None,
        module: str | None = None,
        *,
        context: Mapping[str, str] | None = None,
    ) -> str:
        """The iframe URL of a page module (configure page first), with a fresh page JWT."""
        installation = self.installation(key)
        if not installation.enabled:
            raise AppNotInstalled(f"The app {installation.key!r} is disabled.")
        return page_url(
            installation,
            find_module(installation, module),
            host_origin=self.url,
            context_path=self.product.context_path,
            client_key=self.client_key,
            account_id=self.account_id,
            context=context,
        )

    def context_token(
        self, key: str | None = None, *, context: Mapping[str, Any] | None = None
    ) -> str:
        """What ``AP.context.getToken()`` gives the app's page."""
        installation = self.installation(key)
        if not installation.enabled:
            raise AppNotInstalled(f"The app {installation.key!r} is disabled.")
        return context_token(
            installation.shared_secret,
            client_key=self.client_key,
            account_id=self.account_id,
            context=context,
        )

    def app_token(
        self,
        method: str,
        url: str,
        key: str | None = None,
        *,
        secret: str | None = None,
        ttl: int = 180,
        now: float | None = None,
    ) -> str:
        """A token as the app would mint it to call ``url`` on this site (tests, examples).

        ``url`` is absolute or a path under :attr:`base_url`; ``secret`` overrides the
        current shared secret (to show that an old one is refused).
        """
        installation = self.installation(key)
        if url.startswith("/"):
            url = self.base_url + url
        return app_token(
            secret if secret is not None else installation.shared_secret,
            app_key=installation.key,
            method=method,
            url=url,
            product_context_path=self.product.context_path,
            client_key=self.client_key,
            ttl=ttl,
            now=now,
        )

    # App properties ----------------------------------------------------------------------

    def properties_url(self, key: str | None = None, prop: str | None = None) -> str:
        app_key = key if key is not None else self.installation().key
        url = f"{self.base_url}/rest/atlassian-connect/1/addons/{quote(app_key, safe='')}"
        url += "/properties"
        return url if prop is None else f"{url}/{quote(prop, safe='')}"

    def properties(self, key: str | None = None) -> dict[str, Any]:
        """A copy of the app's properties (key -> parsed JSON value)."""
        app_key = key if key is not None else self.installation().key
        with self.state.lock:
            return dict(self.state.properties.get(app_key, {}))

    def set_property(self, name: str, value: Any, key: str | None = None) -> None:
        """Set a property directly, as if the app had stored it (no limits checked)."""
        app_key = key if key is not None else self.installation().key
        with self.state.lock:
            self.state.app_properties(app_key)[name] = value
            self.state.save()

    # Faults ------------------------------------------------------------------------------

    def add_fault(
        self,
        status: int | None = None,
        *,
        count: int = 1,
        retry_after: int | None = None,
        delay: float = 0.0,
        drop: bool = False,
        path: str | None = None,
        method: str | None = None,
    ) -> Fault:
        """Make the next ``count`` matching requests fail (see :mod:`.faults`)."""
        return self.faults.add(
            Fault(
                status=status,
                count=count,
                retry_after=retry_after,
                delay=delay,
                drop=drop,
                path=path,
                method=method,
            )
        )

    def clear_faults(self) -> None:
        self.faults.clear()

    def describe(self) -> dict[str, Any]:
        """The site as JSON for the control API and CLI (no secrets)."""
        return {
            "product": self.product.name,
            "url": self.url,
            "baseUrl": self.base_url,
            "keyServer": self.key_server_url,
            "kid": self.kid,
            "clientKey": self.client_key,
            "accountId": self.account_id,
            "apps": [i.summary() for i in self.installations()],
            "forge": self.describe_forge(),
        }
