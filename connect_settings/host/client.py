"""A small client for a running emulator's control API (what the CLI subcommands use)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

__all__ = ["EmulatorClient", "EmulatorClientError"]

#: Reinstall and upgrade deliver an event with Forge's retries (4 attempts, 60 s apart).
DELIVERY_WAIT = 4 * (60 + 5) + 30.0


class EmulatorClientError(Exception):
    """The emulator refused the request or could not be reached; the message says why."""


class EmulatorClient:
    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float | None = None,
        **params: str,
    ) -> Any:
        try:
            response = self._session.request(
                method,
                f"{self.url}/_emulator{path}",
                json=body if method in ("POST", "PUT") else None,
                params=params or None,
                timeout=timeout or self.timeout,
            )
        except requests.RequestException as err:
            raise EmulatorClientError(
                f"No emulator answers at {self.url} ({type(err).__name__}); start one with "
                "'manage.py connect_host' or pass --emulator."
            ) from err
        if response.status_code == 204:
            return None
        try:
            data = response.json()
        except ValueError:
            data = {"message": response.text[:500]}
        if not response.ok:
            message = data.get("message") if isinstance(data, dict) else None
            raise EmulatorClientError(message or f"HTTP {response.status_code}")
        return data

    def _app(self, key: str | None) -> str:
        if key:
            return quote(key, safe="")
        apps = self.apps()
        if len(apps) == 1:
            return quote(apps[0]["key"], safe="")
        if not apps:
            raise EmulatorClientError("No app is installed.")
        names = ", ".join(sorted(a["key"] for a in apps))
        raise EmulatorClientError(f"Several apps are installed ({names}): name one.")

    def describe(self) -> dict[str, Any]:
        return dict(self._call("GET", ""))

    def apps(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/apps")["apps"])

    def install(self, app_url: str) -> dict[str, Any]:
        return dict(self._call("POST", "/apps", {"url": app_url})["app"])

    def action(self, action: str, key: str | None = None) -> dict[str, Any]:
        """``uninstall``, ``enable``, ``disable`` or ``reinstall``."""
        return dict(self._call("POST", f"/apps/{self._app(key)}/{action}", {}))

    def properties(self, key: str | None = None) -> dict[str, Any]:
        return dict(self._call("GET", f"/apps/{self._app(key)}/properties")["properties"])

    def page_url(self, key: str | None = None, module: str | None = None) -> str:
        params = {"module": module} if module else {}
        return str(self._call("GET", f"/apps/{self._app(key)}/page-url", **params)["url"])

    def faults(self) -> dict[str, Any]:
        return dict(self._call("GET", "/faults"))

    def add_fault(self, **fault: Any) -> dict[str, Any]:
        return dict(self._call("POST", "/faults", fault)["fault"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def events(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/events")["events"])

    # Forge ---------------------------------------------------------------------------------

    def forge(self) -> dict[str, Any]:
        return dict(self._call("GET", "/forge"))

    def set_forge_events_url(self, url: str | None) -> dict[str, Any]:
        return dict(self._call("PUT", "/forge", {"eventsUrl": url}))

    def forge_fit(self, **options: Any) -> str:
        """``moduleKey``, ``moduleType``, ``principal``, ``context``, ``ttl``."""
        return str(self._call("POST", "/forge/fit", options)["token"])

    def system_token(self, ttl: int | None = None) -> str:
        body = {"ttl": ttl} if ttl is not None else {}
        return str(self._call("POST", "/forge/system-token", body)["token"])

    def forge_action(self, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """``move``, ``reinstall`` or ``upgrade``."""
        return dict(self._call("POST", f"/forge/{action}", body or {}, timeout=DELIVERY_WAIT))

    def deliver_forge_event(self, **options: Any) -> list[dict[str, Any]]:
        """``url``, ``eventType``, ``wrapped``, ``attempts``, ``retryDelay``, ``timeout``."""
        attempts = int(options.get("attempts") or 4)
        delay = float(options.get("retryDelay", 60.0))
        wait = attempts * (delay + float(options.get("timeout", 5.0))) + self.timeout
        return list(self._call("POST", "/forge/events", options, timeout=wait)["deliveries"])
