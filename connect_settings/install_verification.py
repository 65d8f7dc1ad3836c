"""Signed install verification (PROTOCOL.md section 3) for /installed and /uninstalled."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from . import install_keys
from .auth import extract_token, request_qsh_matches
from .conf import connect_settings
from .exceptions import AuthenticationFailed
from .jwt import hs256, rs256
from .jwt.errors import TokenError
from .jwt.keys import check_kid


def accepted_audiences() -> set[str]:
    urls = [connect_settings.BASE_URL, *connect_settings.ALLOWED_BASE_URLS]
    return {str(u).rstrip("/") for u in urls if u}


def verify_signed_install(request: HttpRequest, client_key: str) -> dict[str, Any]:
    """Claims of the RS256 install token, or AuthenticationFailed / KeyUnavailable (503)."""
    token = extract_token(request, header_only=True)
    if token is None:
        raise AuthenticationFailed(
            "Installs must be signed (Authorization: JWT).", code="missing_token"
        )
    try:
        parsed = hs256.parse(token)  # once: the header names the key, rs256 verifies it
        if parsed.header.get("alg") != "RS256":
            raise TokenError("Installs must be signed with RS256.", code="wrong_algorithm")
        key = install_keys.fetcher().get(check_kid(parsed.header.get("kid")))
        # aud is compared below, without trailing slashes, against every accepted base URL.
        claims = rs256.verify(
            parsed,
            key,
            leeway=float(connect_settings.JWT_LEEWAY),
            require=("iss", "iat", "exp", "aud", "qsh"),
        )
    except TokenError as err:
        if err.status != 401:
            raise
        raise AuthenticationFailed(err.message, code=err.code) from err
    if claims.get("iss") != client_key:
        raise AuthenticationFailed(
            "The token's issuer is not the body's clientKey.", code="issuer_mismatch"
        )
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    wanted = accepted_audiences()
    if not any(isinstance(a, str) and a.rstrip("/") in wanted for a in audiences):
        raise AuthenticationFailed("The token's audience is not this app.", code="invalid_audience")
    qsh = claims.get("qsh")
    if not isinstance(qsh, str) or not request_qsh_matches(request, qsh):
        raise AuthenticationFailed(
            "The token's qsh does not match this request.", code="qsh_mismatch"
        )
    return claims
