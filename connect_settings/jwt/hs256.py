"""HS256 tokens on ``hmac`` directly: the per-request path.

PyJWT verifies HS256 correctly, but on our hot path it costs most of the authentication
budget: the claims must be read before the key is known (they name the tenant), so PyJWT would
parse every token twice, re-validating each base64 character in Python, and it re-prepares the
HMAC key on each call. Here a token is parsed once (repeated headers come from a small memo),
signed input is hashed with :mod:`hmac`, and the claims are checked with PyJWT's own rules.

``tests/test_jwt_hs256.py`` pins this module to PyJWT: over a corpus of valid, tampered,
expired and malformed tokens both accept the same tokens, and minted tokens are byte-identical.
Everything else (RS256 installs, Forge's JWKS) stays on PyJWT.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import TokenError

#: Claims every Connect token must carry.
REQUIRED = ("iss", "iat", "exp")
#: The longest token we look at; real Connect tokens are well under 2 KiB.
MAX_TOKEN_LENGTH = 8192

# base64url without padding (PyJWT accepts up to two '=' when the length is a multiple of 4,
# and so do we; anything else outside the alphabet is refused, never skipped).
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_TO_STANDARD = bytes.maketrans(b"-_+/", b"+/!!")
_HS256_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode() + "."
_header_memo: dict[str, dict[str, Any]] = {}
_HEADER_MEMO_SIZE = 64


def _malformed(what: str = "The token is not a JWT.") -> TokenError:
    return TokenError(what, code="malformed_token")


def _strip_padding(segment: str) -> str:
    """The segment without its padding, refusing padding PyJWT refuses (alphabet unchecked)."""
    stripped = segment.rstrip("=")
    padding = len(segment) - len(stripped)
    if padding and (padding > 2 or len(segment) % 4):
        raise _malformed()
    if len(stripped) % 4 == 1:
        raise _malformed()
    return stripped


def _unpadded(segment: str) -> str:
    """The segment without its padding, refusing what PyJWT refuses."""
    stripped = _strip_padding(segment)
    if not _SEGMENT.fullmatch(stripped):
        raise _malformed()
    return stripped


def segment_bytes(segment: str) -> bytes:
    """Decode one base64url segment (non-canonical spellings refused, as PyJWT does)."""
    stripped = _strip_padding(segment)
    # binascii's strict mode checks the alphabet in C (half the cost of a regex plus
    # base64's wrappers on a payload); '+' and '/' are mapped out of it, as base64url has none.
    try:
        standard = stripped.encode("ascii").translate(_TO_STANDARD)
        decoded = binascii.a2b_base64(standard + b"=" * (-len(standard) % 4), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error):
        raise _malformed() from None
    # Leftover bits must be zero: two spellings of one token would defeat replay checks.
    if binascii.b2a_base64(decoded, newline=False).rstrip(b"=") != standard:
        raise _malformed()
    return decoded


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise _malformed() from None
    if not isinstance(value, dict):
        raise _malformed("The token's claims are not an object.")
    return value


def _header(segment: str) -> dict[str, Any]:
    cached = _header_memo.get(segment)
    if cached is None:
        cached = _json_object(segment_bytes(segment))
        kid = cached.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _malformed()
        if "crit" in cached or "b64" in cached:
            # No Connect token uses JWS extensions; PyJWT supports only b64, which would
            # change what the signature covers. Refuse rather than half-support them.
            raise _malformed()
        if len(_header_memo) >= _HEADER_MEMO_SIZE:
            _header_memo.clear()  # a flood of distinct headers only ever costs a re-parse
        _header_memo[segment] = cached
    return dict(cached)  # callers may keep or change their copy


@dataclass(frozen=True, slots=True)
class ParsedToken:
    header: dict[str, Any]
    claims: dict[str, Any]
    #: ``header.payload``, what the signature covers.
    signing_input: str
    #: The signature segment without padding (base64url).
    signature: str


def parse(token: str) -> ParsedToken:
    """Header and claims of a compact JWS, unverified (to choose the key)."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise _malformed()
    parts = token.split(".")
    if len(parts) != 3:
        raise _malformed()
    header_seg, payload_seg, signature = parts
    header = _header(header_seg)
    payload = segment_bytes(payload_seg)
    claims = _json_object(payload)
    signing_input = f"{header_seg}.{payload_seg}"
    return ParsedToken(header, claims, signing_input, _unpadded(signature))


def _sign(signing_input: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _as_int(claims: Mapping[str, Any], name: str) -> int:
    # PyJWT's rule, kept exactly: int() of whatever the claim holds.
    try:
        return int(claims[name])
    except (ValueError, TypeError, OverflowError):
        code = "invalid_token" if name == "iat" else "malformed_token"
        raise TokenError(f"The token's '{name}' claim is not a number.", code=code) from None


def check_claims(
    claims: Mapping[str, Any], *, leeway: float, require: Iterable[str], now: float | None = None
) -> None:
    """PyJWT's registered-claim checks (``aud`` excluded: callers decide it)."""
    for name in require:
        if claims.get(name) is None:
            raise TokenError(f"The token has no '{name}' claim.", code="missing_claim")
    if now is None:
        now = time.time()
    if "iat" in claims and _as_int(claims, "iat") > now + leeway:
        raise TokenError("The token is not yet valid.", code="token_not_yet_valid")
    if "nbf" in claims and _as_int(claims, "nbf") > now + leeway:
        raise TokenError("The token is not yet valid.", code="token_not_yet_valid")
    if "exp" in claims and _as_int(claims, "exp") <= now - leeway:
        raise TokenError("The token has expired.", code="token_expired")
    for name in ("sub", "jti"):
        if name in claims and not isinstance(claims[name], str):
            raise TokenError("The token is not valid.", code="invalid_token")


def clock_of(claims: Mapping[str, Any]) -> tuple[int, int | None]:
    """A token's (not before, expires), from claims :func:`check_claims` accepted."""
    starts = [_as_int(claims, name) for name in ("iat", "nbf") if name in claims]
    return max(starts, default=-(2**63)), _as_int(claims, "exp") if "exp" in claims else None


def check_clock(not_before: int, expires: int | None, *, leeway: float) -> None:
    """:func:`check_claims`'s clock checks again, for a token that has passed all of them
    before (its claims cannot have changed, only the time)."""
    now = time.time()
    if not_before > now + leeway:
        raise TokenError("The token is not yet valid.", code="token_not_yet_valid")
    if expires is not None and expires <= now - leeway:
        raise TokenError("The token has expired.", code="token_expired")


def verify(
    parsed: ParsedToken,
    secret: str,
    *,
    leeway: float = 30,
    require: Iterable[str] = REQUIRED,
) -> dict[str, Any]:
    """The claims of an HS256 token signed with ``secret``; :class:`TokenError` otherwise."""
    if parsed.header.get("alg") != "HS256":
        raise TokenError("Only HS256 tokens are accepted here.", code="wrong_algorithm")
    # Comparing encodings also refuses a non-canonical spelling of the right signature.
    if not hmac.compare_digest(_sign(parsed.signing_input, secret), parsed.signature):
        segment_bytes(parsed.signature)  # malformed (as PyJWT says) rather than wrong?
        raise TokenError("The token's signature does not verify.", code="bad_signature")
    check_claims(parsed.claims, leeway=leeway, require=require)
    return parsed.claims


def mint(claims: Mapping[str, Any], secret: str) -> str:
    """An HS256 token, byte-identical to ``jwt.encode(claims, secret, "HS256",
    headers={"typ": "JWT"})``."""
    payload = json.dumps(claims, separators=(",", ":")).encode()
    signing_input = _HS256_HEADER + base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return f"{signing_input}.{_sign(signing_input, secret)}"
