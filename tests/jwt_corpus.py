"""Cases shared by the HS256 and RS256 differential corpora (test_jwt_hs256, test_jwt_rs256):
the registered-claim checks and the malformed tokens, built with each module's own signer."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

#: ``raw_token(header, claims, *, raw=False)`` of the module building its corpus.
Signer = Callable[..., str]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claim_cases(
    valid: str,
    raw_token: Signer,
    header: dict[str, Any],
    good_claims: Callable[..., dict[str, Any]],
    now: int,
) -> dict[str, str]:
    """Times, types and tampering of the claims, which both algorithms check alike."""
    h, _, s = valid.split(".")
    alg = json.dumps({"alg": header["alg"]}, separators=(",", ":")).encode()
    return {
        "valid, float times": raw_token(header, good_claims(iat=now + 0.5, exp=now + 99.5)),
        "valid, numeric string exp": raw_token(header, good_claims(exp=str(now + 60))),
        "valid, iat within leeway": raw_token(header, good_claims(iat=now + 20)),
        "valid, nbf past": raw_token(header, good_claims(nbf=now - 5)),
        "valid, unicode claims": raw_token(header, good_claims(iss="clé-ü-☃")),
        "payload tampered": f"{h}.{b64(json.dumps(good_claims(iss='other')).encode())}.{s}",
        "kid not a string": raw_token({**header, "kid": 7}, good_claims()),
        "expired": raw_token(header, good_claims(iat=now - 900, exp=now - 300)),
        "expired within leeway": raw_token(header, good_claims(iat=now - 900, exp=now - 10)),
        "iat in the future": raw_token(header, good_claims(iat=now + 600, exp=now + 900)),
        "nbf in the future": raw_token(header, good_claims(nbf=now + 600)),
        "exp not a number": raw_token(header, good_claims(exp="soon")),
        "exp a list": raw_token(header, good_claims(exp=[1])),
        "exp huge": raw_token(header, good_claims(exp=10**30)),
        "exp infinite": raw_token(alg, b'{"iss":"a","exp":1e999}', raw=True),
        "iat not a number": raw_token(header, good_claims(iat="now")),
        "nbf not a number": raw_token(header, good_claims(nbf="later")),
        "sub not a string": raw_token(header, good_claims(sub=42)),
        "jti not a string": raw_token(header, good_claims(jti=["x"])),
    }


def malformed_cases(
    valid: str,
    raw_token: Signer,
    header: dict[str, Any],
    good_claims: Callable[..., dict[str, Any]],
) -> dict[str, str]:
    """Broken segments of ``valid``, and headers or payloads that are not JSON objects."""
    h, p, s = valid.split(".")
    header_json = json.dumps(header).encode()
    claims_json = json.dumps(good_claims()).encode()
    return {
        "signature empty": f"{h}.{p}.",
        "signature junk": f"{h}.{p}.{s[:-1]}!",
        "signature non-canonical bits": f"{h}.{p}.{s[:-1]}{chr(ord(s[-1]) ^ 1)}",
        "header junk": f"{h}!.{p}.{s}",
        "payload junk": f"{h}.{p}*.{s}",
        "payload length mod 4 == 1": f"{h}.{p}A.{s}",
        "two segments": f"{h}.{p}",
        "four segments": f"{h}.{p}.{s}.{s}",
        "empty": "",
        "dots only": "..",
        "header not json": raw_token(b"not json", claims_json, raw=True),
        "header a list": raw_token([header["alg"]], good_claims()),
        "payload not json": raw_token(header_json, b"{oops", raw=True),
        "payload a list": raw_token(header, [1, 2]),
        "payload not utf-8": raw_token(header_json, b'{"iss":"\xff"}', raw=True),
    }
