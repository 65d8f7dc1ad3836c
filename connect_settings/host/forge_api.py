"""The product REST API as a Forge remote reaches it: ``{apiBaseUrl}/rest/...``.

``apiBaseUrl`` is ``{site}/ex/jira/<cloudId>`` (Confluence: ``/ex/confluence/<cloudId>``, whose
REST API then sits under ``/wiki``), authenticated by ``Authorization: Bearer <system or user
token>``. It serves the very same app properties as the Connect route (the Forge app reads
those of its ``app.connect.key``), through the same :class:`~.properties.PropertiesApi`.
Like the API gateway, it authenticates before it looks at the resource.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

from .forge_tokens import ForgeTokenError, check_oauth_token
from .properties import properties_route
from .replies import Reply, error
from .tokens import AppTokenError

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = ["PREFIX", "handle_forge_api", "product_path"]

PREFIX = "/ex/"
_ROUTE = re.compile(r"/ex/(?P<product>[^/]+)/(?P<cloud>[^/]+)(?P<rest>/.*)?")
UNAUTHENTICATED = "Client must be authenticated to access this resource."


def product_path(path: str) -> str | None:
    """``/ex/jira/<cloudId>/rest/x`` -> ``/rest/x``: the path the product itself would see
    (so that faults aimed at the product REST API hit this route too)."""
    match = _ROUTE.fullmatch(path)
    return (match.group("rest") or "/") if match else None


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AppTokenError("Send 'Authorization: Bearer <the app's system or user token>'.")
    return token.strip()


def handle_forge_api(
    emu: Emulator, method: str, path: str, authorization: str | None, body: bytes
) -> Reply:
    match = _ROUTE.fullmatch(path)
    if match is None or match.group("product") != emu.product.name:
        return error(404, f"No such API here: this site is {emu.product.display_name}.")
    cloud_id = unquote(match.group("cloud"))
    rest = match.group("rest") or "/"
    identity = emu.state.forge

    def authenticate() -> None:
        token = _bearer(authorization)
        with emu.state.lock:
            secret, installation_id = identity.token_secret, identity.installation_id
            app_id = identity.app_id
        try:
            check_oauth_token(
                token,
                secret,
                cloud_id=emu.cloud_id,
                installation_id=installation_id,
                app_id=app_id,
            )
        except ForgeTokenError as err:
            raise AppTokenError(err.reason) from err
        if cloud_id != emu.cloud_id:
            # A token is good for its own site only; the gateway refuses other cloud ids.
            raise AppTokenError("The token is not valid for this cloud id.")

    props = properties_route(emu.product.context_path).fullmatch(rest)
    if props and emu.properties_api is not None:
        addon_key = unquote(props.group("app"))
        raw_key = props.group("key")

        def authenticate_as_app() -> None:
            authenticate()
            if addon_key != emu.forge_connect_key:
                raise AppTokenError("Only the app itself may use its properties.")

        return emu.properties_api.serve(
            method,
            addon_key,
            unquote(raw_key) if raw_key else None,
            body=body,
            authenticate=authenticate_as_app,
            base_url=emu.forge_api_base_url + emu.product.context_path,
            scheme="Bearer",
        )
    try:
        authenticate()
    except AppTokenError as err:
        return error(401, f"{UNAUTHENTICATED} {err.reason}", {"WWW-Authenticate": "Bearer"})
    return error(404, "The emulator does not emulate this REST resource.")
