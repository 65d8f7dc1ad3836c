"""RS256 verification (signed installs) on ``cryptography`` directly.

Hand-written rather than PyJWT's ``jwt.decode``, for the cost on the install path: the token
has already been parsed once by :func:`.hs256.parse` (its header names the ``kid`` that
chooses the key), and ``jwt.decode`` would parse it all over again, checking each base64
character of every segment in a Python generator (~660 iterations for a Connect install
token), which cost more than the RSA signature check itself. Nothing cryptographic is
re-implemented: the signature is checked by ``cryptography`` exactly as PyJWT's
``RSAAlgorithm.verify`` does it (PKCS#1 v1.5 with SHA-256), the registered claims by
:func:`.hs256.check_claims` (PyJWT's rules, already pinned to PyJWT), and ``aud`` by
:func:`check_audience` (PyJWT's ``_validate_aud`` rules, non-strict).

``tests/test_jwt_rs256.py`` pins this module to PyJWT: over a corpus of valid, tampered,
expired, malformed and wrong-algorithm tokens both give the same verdicts and claims.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.hashes import SHA256

from .errors import TokenError
from .hs256 import ParsedToken, check_claims, segment_bytes

__all__ = ["check_audience", "verify"]


def verify(
    parsed: ParsedToken,
    public_key: RSAPublicKey,
    *,
    leeway: float = 30,
    require: Iterable[str] = ("iss", "iat", "exp", "aud"),
) -> dict[str, Any]:
    """The claims of an RS256 token signed by ``public_key``; :class:`TokenError` otherwise.

    ``aud`` is not checked here: see :func:`check_audience`.
    """
    if parsed.header.get("alg") != "RS256":
        raise TokenError("Only RS256 tokens are accepted here.", code="wrong_algorithm")
    # Non-canonical spellings (non-zero leftover bits) are malformed, as PyJWT says.
    signature = segment_bytes(parsed.signature)
    try:
        public_key.verify(signature, parsed.signing_input.encode(), PKCS1v15(), SHA256())
    except InvalidSignature:
        raise TokenError("The token's signature does not verify.", code="bad_signature") from None
    check_claims(parsed.claims, leeway=leeway, require=require)
    return parsed.claims


def check_audience(claims: Mapping[str, Any], audience: Collection[str] | None) -> None:
    """PyJWT's ``aud`` rule: with no audience the token must carry none; otherwise ``aud``
    (a string or a list of strings) must name one of ``audience`` exactly."""
    aud = claims.get("aud")
    if audience is None:
        if aud:
            raise TokenError("The token's audience is not this app.", code="invalid_audience")
        return
    if not aud:
        raise TokenError("The token has no 'aud' claim.", code="missing_claim")
    listed = [aud] if isinstance(aud, str) else aud
    if not isinstance(listed, list) or not all(isinstance(a, str) for a in listed):
        raise TokenError("The token's audience is not this app.", code="invalid_audience")
    if not any(a in listed for a in audience):
        raise TokenError("The token's audience is not this app.", code="invalid_audience")
