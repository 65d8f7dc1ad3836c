"""Forge's tokens as the emulated platform mints them: FITs, the JWKS, app OAuth tokens.

A Forge Invocation Token (FIT) is RS256 with ``kid`` (PROTOCOL.md section 7); the JWKS lists
the public keys. System and user tokens are opaque to apps: here they are HS256 JWTs under a
secret only the emulator holds, bound to the site's cloud id and Forge installation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import jwt as pyjwt
from jwt.algorithms import RSAAlgorithm

from .forge_identity import ForgeKey

__all__ = [
    "FIT_ISSUER",
    "FIT_TTL",
    "OAUTH_AUDIENCE",
    "OAUTH_MAX_TTL",
    "ForgeTokenError",
    "check_oauth_token",
    "jwk_set",
    "mint_oauth_token",
    "sign_fit",
]

FIT_ISSUER = "forge/invocation-token"
#: Forge's invocation tokens live about 25 s.
FIT_TTL = 25
OAUTH_ISSUER = "connect_settings-host/forge-oauth"
OAUTH_AUDIENCE = "api.atlassian.com"
#: System and user tokens are valid up to 4 hours, with no refresh endpoint.
OAUTH_MAX_TTL = 4 * 3600
MAX_TOKEN_LENGTH = 8192

Algorithm = Literal["RS256", "HS256", "none"]


class ForgeTokenError(Exception):
    """A Bearer token the emulated API refuses; the reason never contains the token."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def jwk_set(keys: list[ForgeKey]) -> dict[str, Any]:
    """The JWKS document: every key's public half, newest last."""
    out = []
    for key in keys:
        jwk = RSAAlgorithm.to_jwk(key.private_key.public_key(), as_dict=True)
        jwk.update({"kid": key.kid, "alg": "RS256", "use": "sig"})
        out.append(jwk)
    return {"keys": out}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unsafe_token(header: dict[str, Any], claims: Mapping[str, Any], hmac_key: bytes | None) -> str:
    # PyJWT (rightly) refuses to use a PEM public key as an HMAC secret, and to produce an
    # unsigned token with a kid; hostile tests need exactly those tokens, so build them here.
    signing_input = (
        _b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
    )
    if hmac_key is None:
        return signing_input + "."
    mac = hmac.new(hmac_key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64(mac)


def sign_fit(
    claims: Mapping[str, Any],
    key: ForgeKey,
    *,
    kid: str | None = None,
    algorithm: Algorithm = "RS256",
    signing_key: Any = None,
) -> str:
    """Sign FIT claims with ``key`` (header ``kid`` = its kid unless ``kid`` says otherwise).

    ``signing_key`` swaps the key: another RSA private key for RS256 (a key not in the JWKS),
    or bytes for HS256 (default: the JWKS key's public PEM, the algorithm-confusion attack).
    ``algorithm="none"`` gives an unsigned token.
    """
    header = {"typ": "JWT", "alg": algorithm, "kid": kid if kid is not None else key.kid}
    if algorithm == "RS256":
        private = signing_key if signing_key is not None else key.private_key
        return pyjwt.encode(dict(claims), private, algorithm="RS256", headers=header)
    if algorithm == "HS256":
        secret = signing_key if signing_key is not None else key.public_pem
        return _unsafe_token(header, claims, bytes(secret))
    if algorithm == "none":
        return _unsafe_token(header, claims, None)
    raise ValueError(f"Unsupported algorithm {algorithm!r}: RS256, HS256 or none.")


def mint_oauth_token(
    secret: str,
    *,
    kind: Literal["system", "user"],
    subject: str,
    app_id: str,
    cloud_id: str,
    installation_id: str,
    ttl: int = OAUTH_MAX_TTL,
    now: float | None = None,
) -> str:
    """An app system token (``kind="system"``) or a user token for ``subject``."""
    if not isinstance(ttl, int) or not 1 <= ttl <= OAUTH_MAX_TTL:
        raise ValueError(f"Forge OAuth tokens live 1 to {OAUTH_MAX_TTL} seconds.")
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": OAUTH_ISSUER,
        "aud": OAUTH_AUDIENCE,
        "sub": subject,
        "iat": issued,
        "exp": issued + ttl,
        "jti": str(uuid.uuid4()),
        "tokenType": kind,
        "appId": app_id,
        "cloudId": cloud_id,
        "installationId": installation_id,
    }
    return pyjwt.encode(claims, secret, algorithm="HS256", headers={"typ": "JWT"})


def check_oauth_token(
    token: str, secret: str, *, cloud_id: str, installation_id: str, app_id: str
) -> dict[str, Any]:
    """The claims of a valid system or user token for this site's Forge installation."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise ForgeTokenError("The Bearer token is not a token this API issued.")
    try:
        claims = pyjwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=OAUTH_AUDIENCE,
            issuer=OAUTH_ISSUER,
            options={"require": ["iss", "aud", "sub", "iat", "exp", "cloudId", "installationId"]},
        )
    except pyjwt.ExpiredSignatureError as err:
        raise ForgeTokenError("The Bearer token has expired.") from err
    except pyjwt.PyJWTError as err:
        raise ForgeTokenError("The Bearer token is not a token this API issued.") from err
    if claims.get("tokenType") not in ("system", "user") or claims.get("appId") != app_id:
        raise ForgeTokenError("The Bearer token is not a token this API issued.")
    if claims["cloudId"] != cloud_id:
        raise ForgeTokenError("The Bearer token is not valid for this site.")
    if claims["installationId"] != installation_id:
        # Tokens belong to one installation; a reinstall makes the old ones useless.
        raise ForgeTokenError("The Bearer token belongs to an installation that is gone.")
    return claims
