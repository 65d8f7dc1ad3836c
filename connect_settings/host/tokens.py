"""Every token the emulated product mints, and the check of the tokens apps send it.

Built on ``connect_settings.jwt`` (the same qsh and PyJWT code the app side uses); the
independent check that these tokens are right is the node ``atlassian-jwt`` interop test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from ..jwt.canonical import CONTEXT_QSH, query_string_hash, query_string_hash_from_url
from ..jwt.errors import TokenError
from ..jwt.tokens import mint_hs256, mint_rs256, read_unverified, verify_hs256

__all__ = [
    "APP_TOKEN_LEEWAY",
    "AppTokenError",
    "app_token",
    "check_app_token",
    "context_token",
    "lifecycle_token",
    "page_token",
    "signed_install_token",
]

#: Clock skew the product tolerates on app tokens (Atlassian's Java library uses 30 s).
APP_TOKEN_LEEWAY = 30
PAGE_TOKEN_TTL = 180
CONTEXT_TOKEN_TTL = 900
LIFECYCLE_TOKEN_TTL = 180


class AppTokenError(Exception):
    """An app's REST call is not authenticated as the app; always a 401."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _path_of(url: str) -> str:
    return urlsplit(url).path


def signed_install_token(
    private_key: RSAPrivateKey,
    kid: str,
    *,
    client_key: str,
    descriptor_base_url: str,
    callback_url: str,
    now: float | None = None,
) -> str:
    """RS256 token of ``installed`` / ``uninstalled``: ``aud`` is the descriptor's baseUrl and
    the qsh is relative to the path of that baseUrl (PROTOCOL.md section 3)."""
    claims = {
        "iss": client_key,
        "aud": [descriptor_base_url],
        "qsh": query_string_hash_from_url(
            "POST", callback_url, base_path=_path_of(descriptor_base_url)
        ),
    }
    return mint_rs256(claims, private_key, kid=kid, ttl=LIFECYCLE_TOKEN_TTL, now=now)


def lifecycle_token(
    secret: str,
    *,
    client_key: str,
    descriptor_base_url: str,
    callback_url: str,
    now: float | None = None,
) -> str:
    """HS256 token of ``enabled`` / ``disabled``, signed with the current shared secret."""
    claims = {
        "iss": client_key,
        "qsh": query_string_hash_from_url(
            "POST", callback_url, base_path=_path_of(descriptor_base_url)
        ),
    }
    return mint_hs256(claims, secret, ttl=LIFECYCLE_TOKEN_TTL, now=now)


def page_token(
    secret: str,
    *,
    client_key: str,
    account_id: str,
    descriptor_base_url: str,
    page_url: str,
    now: float | None = None,
) -> str:
    """HS256 token of an iframe load: qsh over the page URL relative to the app's base path."""
    claims = {
        "iss": client_key,
        "sub": account_id,
        "qsh": query_string_hash_from_url("GET", page_url, base_path=_path_of(descriptor_base_url)),
        "context": {},
    }
    return mint_hs256(claims, secret, ttl=PAGE_TOKEN_TTL, now=now)


def context_token(
    secret: str,
    *,
    client_key: str,
    account_id: str,
    context: Mapping[str, Any] | None = None,
    ttl: int = CONTEXT_TOKEN_TTL,
    now: float | None = None,
) -> str:
    """HS256 token of ``AP.context.getToken()``: its qsh is the literal ``context-qsh``."""
    claims = {
        "iss": client_key,
        "sub": account_id,
        "qsh": CONTEXT_QSH,
        "context": dict(context or {}),
    }
    return mint_hs256(claims, secret, ttl=ttl, now=now)


def app_token(
    secret: str,
    *,
    app_key: str,
    method: str,
    url: str,
    product_context_path: str,
    client_key: str | None = None,
    ttl: int = 180,
    now: float | None = None,
) -> str:
    """A token as an app mints it to call the product (for tests and examples): qsh relative
    to the product's context path, ``iss`` the app key, ``aud`` the clientKey as ACE sets it."""
    claims: dict[str, Any] = {
        "iss": app_key,
        "qsh": query_string_hash_from_url(method, url, base_path=product_context_path),
    }
    if client_key:
        claims["aud"] = [client_key]
    return mint_hs256(claims, secret, ttl=ttl, now=now)


def check_app_token(
    token: str,
    secret: str,
    *,
    app_key: str,
    client_key: str,
    method: str,
    raw_path: str,
    query: str,
    product_context_path: str,
) -> dict[str, Any]:
    """Verify an app -> product token; :class:`AppTokenError` says why it is refused.

    HS256 with the current secret only, ``exp`` and ``iat`` required with a 30 s leeway,
    ``iss`` the app, a computed qsh (never ``context-qsh``), ``aud`` if present naming the site.
    """
    try:
        header, unverified = read_unverified(token)
        if unverified.get("iss") != app_key:
            raise AppTokenError("The token's issuer (iss) is not the app that owns this resource.")
        claims = verify_hs256(token, secret, leeway=APP_TOKEN_LEEWAY, header=header)
    except TokenError as err:
        raise AppTokenError(err.message) from err
    qsh = claims.get("qsh")
    if qsh == CONTEXT_QSH:
        raise AppTokenError("A context token (qsh 'context-qsh') cannot call the REST API.")
    expected = query_string_hash(method, raw_path, query, base_path=product_context_path)
    if not isinstance(qsh, str) or qsh != expected:
        raise AppTokenError("The token's query string hash (qsh) does not match the request.")
    aud = claims.get("aud")
    if aud is not None:
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or client_key not in audiences:
            raise AppTokenError("The token's audience (aud) is not this site.")
    return claims
