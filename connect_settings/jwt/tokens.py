"""Decoding, verifying and minting Connect tokens.

Each verification pins exactly one algorithm, requires ``exp`` and ``iat``, applies a leeway
and reports :class:`TokenError` codes that never echo the token. HS256 (every request) runs
on :mod:`.hs256`, RS256 (signed installs) on :mod:`.rs256`; both are pinned to PyJWT by
differential tests. Minting RS256 and reading PEM keys stay on PyJWT, whose exceptions are
translated here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from . import hs256, rs256
from .canonical import CONTEXT_QSH
from .errors import TokenError
from .hs256 import MAX_TOKEN_LENGTH

__all__ = [
    "CONTEXT_QSH",
    "MAX_TOKEN_LENGTH",
    "mint_hs256",
    "mint_rs256",
    "read_unverified",
    "rsa_public_key",
    "translate_error",
    "verify_hs256",
    "verify_rs256",
]


def read_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a token without checking its signature (to choose the key)."""
    parsed = hs256.parse(token)
    return parsed.header, parsed.claims


def translate_error(err: pyjwt.PyJWTError) -> TokenError:
    """PyJWT's exception as a :class:`TokenError` with a stable code and a safe message."""
    # Order matters: several of these subclass each other in PyJWT.
    if isinstance(err, pyjwt.ExpiredSignatureError):
        return TokenError("The token has expired.", code="token_expired")
    if isinstance(err, pyjwt.ImmatureSignatureError):
        return TokenError("The token is not yet valid.", code="token_not_yet_valid")
    if isinstance(err, pyjwt.MissingRequiredClaimError):
        return TokenError(f"The token has no '{err.claim}' claim.", code="missing_claim")
    if isinstance(err, pyjwt.InvalidAudienceError):
        return TokenError("The token's audience is not this app.", code="invalid_audience")
    if isinstance(err, pyjwt.InvalidIssuerError):
        return TokenError("The token's issuer is not accepted.", code="invalid_issuer")
    if isinstance(err, pyjwt.InvalidAlgorithmError):
        return TokenError("The token's algorithm is not accepted here.", code="wrong_algorithm")
    if isinstance(err, pyjwt.InvalidSignatureError):
        return TokenError("The token's signature does not verify.", code="bad_signature")
    if isinstance(err, pyjwt.InvalidKeyError):
        return TokenError("The verification key is not usable.", code="bad_signature")
    if isinstance(err, pyjwt.DecodeError):
        return TokenError("The token is not a JWT.", code="malformed_token")
    return TokenError("The token is not valid.", code="invalid_token")


def _check_alg(header: Mapping[str, Any], alg: str) -> None:
    if header.get("alg") != alg:
        raise TokenError(f"Only {alg} tokens are accepted here.", code="wrong_algorithm")


def verify_hs256(
    token: str,
    secret: str,
    *,
    leeway: float = 30,
    header: Mapping[str, Any] | None = None,
    require: Iterable[str] = ("iss", "iat", "exp"),
) -> dict[str, Any]:
    """Verify an HS256 token with a shared secret and return its claims.

    ``aud`` is not checked here (host tokens rarely carry it); the caller decides. ``header``
    is accepted for symmetry with :func:`verify_rs256`; the token is parsed again either way.
    """
    parsed = hs256.parse(token)
    _check_alg(header if header is not None else parsed.header, "HS256")
    return hs256.verify(parsed, secret, leeway=leeway, require=require)


def rsa_public_key(key: Any) -> RSAPublicKey:
    """An RSA public key from a key object or PEM text, read as PyJWT reads it (a private
    key stands for its public half)."""
    if isinstance(key, RSAPublicKey):
        return key
    try:
        prepared = RSAAlgorithm(RSAAlgorithm.SHA256).prepare_key(key)
    except pyjwt.PyJWTError as err:
        raise translate_error(err) from err
    return prepared.public_key() if isinstance(prepared, RSAPrivateKey) else prepared


def verify_rs256(
    token: str,
    public_key: Any,
    *,
    audience: Iterable[str],
    leeway: float = 30,
    header: Mapping[str, Any] | None = None,
    require: Iterable[str] = ("iss", "iat", "exp", "aud"),
    verify_aud: bool = True,
) -> dict[str, Any]:
    """Verify an RS256 token (signed installs) against a PEM string or key object.

    ``verify_aud=False`` lets the caller compare ``aud`` itself (e.g. ignoring a trailing
    slash, which PyJWT's exact comparison would not). Callers that already hold the parsed
    token use :func:`.rs256.verify` directly.
    """
    parsed = hs256.parse(token)
    _check_alg(header if header is not None else parsed.header, "RS256")
    claims = rs256.verify(parsed, rsa_public_key(public_key), leeway=leeway, require=require)
    if verify_aud:
        rs256.check_audience(claims, list(audience) or None)
    return claims


def _with_times(claims: Mapping[str, Any], ttl: int, now: float | None) -> dict[str, Any]:
    issued = int(now if now is not None else time.time())
    out = {"iat": issued, "exp": issued + ttl}
    out.update(claims)
    return out


def mint_hs256(
    claims: Mapping[str, Any], secret: str, *, ttl: int = 180, now: float | None = None
) -> str:
    """An HS256 token; ``iat``/``exp`` are added unless the claims set them."""
    return hs256.mint(_with_times(claims, ttl, now), secret)


def mint_rs256(
    claims: Mapping[str, Any],
    private_key: Any,
    *,
    kid: str,
    ttl: int = 180,
    now: float | None = None,
) -> str:
    """An RS256 token with ``kid`` in its header (what Atlassian signs installs with)."""
    return pyjwt.encode(
        _with_times(claims, ttl, now),
        private_key,
        algorithm="RS256",
        headers={"typ": "JWT", "kid": kid},
    )
