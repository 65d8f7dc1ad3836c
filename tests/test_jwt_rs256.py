"""The hand-written RS256 path (``jwt/rs256.py``) agrees with PyJWT, token for token.

PyJWT is the reference, as the install path used it before rs256.py: the token parsed once
to read ``alg`` and ``kid``, then ``jwt.decode`` with RS256 pinned. Over a corpus of valid,
tampered, expired, malformed and wrong-algorithm tokens both must accept the same tokens with
the same claims and refuse the rest with the same error code; ``aud`` likewise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt_corpus import b64, claim_cases, malformed_cases

from connect_settings.jwt import hs256, rs256
from connect_settings.jwt.errors import TokenError
from connect_settings.jwt.tokens import mint_rs256, translate_error, verify_rs256
from connect_settings.testing import generate_rsa_key, public_pem

REQUIRE = ("iss", "iat", "exp", "aud", "qsh")
LEEWAY = 30
APP = "https://app.example.com"
PRIVATE = generate_rsa_key()
PUBLIC = PRIVATE.public_key()
OTHER = generate_rsa_key()


def raw_token(
    header: Any, claims: Any, key: rsa.RSAPrivateKey = PRIVATE, *, raw: bool = False
) -> str:
    """A token from arbitrary header/claims JSON (or raw bytes), RS256-signed with ``key``."""
    h = header if raw else json.dumps(header, separators=(",", ":")).encode()
    p = claims if raw else json.dumps(claims, separators=(",", ":")).encode()
    signing_input = f"{b64(h)}.{b64(p)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), SHA256())
    return f"{signing_input}.{b64(signature)}"


def reference(token: str, audience: list[str] | None = None) -> tuple[str, Any]:
    """PyJWT's verdict, as verify_signed_install reached it before rs256.py."""
    try:
        header = hs256.parse(token).header
    except TokenError as err:
        return ("error", err.code)
    if header.get("alg") != "RS256":
        return ("error", "wrong_algorithm")
    try:
        claims = pyjwt.decode(
            token,
            PUBLIC,
            algorithms=["RS256"],
            audience=audience,
            leeway=LEEWAY,
            options={"require": list(REQUIRE), "verify_aud": audience is not None},
        )
    except pyjwt.PyJWTError as err:
        return ("error", translate_error(err).code)
    return ("ok", claims)


def ours(token: str, audience: list[str] | None = None) -> tuple[str, Any]:
    try:
        claims = rs256.verify(hs256.parse(token), PUBLIC, leeway=LEEWAY, require=REQUIRE)
        if audience is not None:
            rs256.check_audience(claims, audience)
    except TokenError as err:
        return ("error", err.code)
    return ("ok", claims)


def good_claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "client-key", "iat": now, "exp": now + 180, "aud": [APP], "qsh": "abc", **extra}


HEADER = {"alg": "RS256", "typ": "JWT", "kid": "prod/key-1"}


def without(name: str) -> dict[str, Any]:
    return {k: v for k, v in good_claims().items() if k != name}


def corpus() -> list[tuple[str, str]]:
    now = int(time.time())
    valid = raw_token(HEADER, good_claims(sub="557058:x", context={"a": [1, "ü"]}))
    h, p, s = valid.split(".")
    sig = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    sig[20] ^= 0x01
    pem = public_pem(PRIVATE)
    confused_input = f"{b64(json.dumps({'alg': 'HS256'}).encode())}.{p}"
    confused = hmac.new(pem, confused_input.encode(), hashlib.sha256).digest()
    lying_input = f"{h}.{p}"
    lying = hmac.new(pem, lying_input.encode(), hashlib.sha256).digest()
    other_signature = mint_rs256(good_claims(), PRIVATE, kid="k").split(".")[2]
    cases = {
        "valid": valid,
        "valid, minted by mint_rs256": mint_rs256(good_claims(), PRIVATE, kid="k"),
        "valid, no typ": raw_token({"alg": "RS256", "kid": "k"}, good_claims()),
        "valid, no kid": raw_token({"alg": "RS256"}, good_claims()),
        "valid, padded signature": f"{h}.{p}.{s}" + "=" * (-len(s) % 4),
        "valid, aud a string": raw_token(HEADER, good_claims(aud=APP)),
        "other key": raw_token(HEADER, good_claims(), key=OTHER),
        "header tampered": f"{b64(json.dumps({**HEADER, 'kid': 'k2'}).encode())}.{p}.{s}",
        "signature bit flipped": f"{h}.{p}.{b64(bytes(sig))}",
        "signature truncated": f"{h}.{p}.{s[:-4]}",
        "signature one char short": f"{h}.{p}.{s[:-1]}",
        "signature over-padded": f"{h}.{p}.{s}===",
        "signature of another token": f"{h}.{p}.{other_signature}",
        "alg none": f"{b64(json.dumps({'alg': 'none'}).encode())}.{p}.",
        "alg none, signed": raw_token({"alg": "none"}, good_claims()),
        "alg RS512": raw_token({"alg": "RS512", "kid": "k"}, good_claims()),
        "alg PS256": raw_token({"alg": "PS256", "kid": "k"}, good_claims()),
        "alg HS256, HMAC under the PEM": f"{confused_input}.{b64(confused)}",
        "alg RS256, HMAC under the PEM": f"{lying_input}.{b64(lying)}",
        "alg missing": raw_token({"kid": "k"}, good_claims()),
        "no iss": raw_token(HEADER, without("iss")),
        "no exp": raw_token(HEADER, without("exp")),
        "no iat": raw_token(HEADER, without("iat")),
        "no aud": raw_token(HEADER, without("aud")),
        "no qsh": raw_token(HEADER, without("qsh")),
        "qsh null": raw_token(HEADER, good_claims(qsh=None)),
        "aud another app": raw_token(HEADER, good_claims(aud=["https://evil.example"])),
        "aud with a trailing slash": raw_token(HEADER, good_claims(aud=[APP + "/"])),
        "aud among others": raw_token(HEADER, good_claims(aud=["https://x.example", APP])),
        "aud empty list": raw_token(HEADER, good_claims(aud=[])),
        "aud empty string": raw_token(HEADER, good_claims(aud="")),
        "aud a number": raw_token(HEADER, good_claims(aud=7)),
        "aud an object": raw_token(HEADER, good_claims(aud={"url": APP})),
        "aud list with a number": raw_token(HEADER, good_claims(aud=[APP, 7])),
        **claim_cases(valid, raw_token, HEADER, good_claims, now),
        **malformed_cases(valid, raw_token, HEADER, good_claims),
    }  # fmt: skip
    return list(cases.items())


NAMES = [name for name, _ in corpus()]


@pytest.fixture(scope="module")
def tokens() -> dict[str, str]:
    # Built when this module's tests start, not at collection: the times in the tokens are
    # relative to now, and a whole-suite run reaches this module minutes after collecting.
    return dict(corpus())


@pytest.mark.parametrize("name", NAMES)
def test_same_verdict_as_pyjwt(name: str, tokens: dict[str, str]) -> None:
    assert ours(tokens[name]) == reference(tokens[name])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("audience", [[APP], ["https://x.example", APP], ["https://y.example"]])
def test_same_audience_verdict_as_pyjwt(
    name: str, audience: list[str], tokens: dict[str, str]
) -> None:
    token = tokens[name]
    expected = reference(token, audience)
    if name in ("sub not a string", "jti not a string") and APP not in audience:
        # Two faults: PyJWT checks aud before sub/jti, rs256 after (check_claims is shared
        # with HS256). Both refuse; only the reported code differs.
        assert expected == ("error", "invalid_audience")
        assert ours(token, audience) == ("error", "invalid_token")
        return
    assert ours(token, audience) == expected


def test_corpus_is_not_trivial(tokens: dict[str, str]) -> None:
    verdicts = [reference(token) for token in tokens.values()]
    assert [v[0] for v in verdicts].count("ok") >= 12
    codes = {v[1] for v in verdicts if v[0] == "error"}
    assert codes >= {
        "malformed_token",
        "wrong_algorithm",
        "bad_signature",
        "token_expired",
        "token_not_yet_valid",
        "missing_claim",
        "invalid_token",
    }
    with_aud = [reference(token, [APP]) for token in tokens.values()]
    assert ("error", "invalid_audience") in with_aud


def test_verify_rs256_reads_pem_text_and_key_objects_alike() -> None:
    token = raw_token(HEADER, good_claims())
    pem = public_pem(PRIVATE).decode()
    claims = hs256.parse(token).claims
    assert verify_rs256(token, pem, audience=[APP]) == claims
    assert verify_rs256(token, PUBLIC, audience=[APP]) == claims
    # A private key stands for its public half, as PyJWT reads one.
    assert verify_rs256(token, PRIVATE, audience=[APP]) == claims
    with pytest.raises(TokenError) as err:
        verify_rs256(token, public_pem(OTHER).decode(), audience=[APP])
    assert err.value.code == "bad_signature"
    with pytest.raises(TokenError) as err:
        verify_rs256(token, "not a key", audience=[APP])
    assert err.value.code == "bad_signature"


@settings(max_examples=300, deadline=None)
@given(position=st.integers(min_value=0), replacement=st.characters(codec="ascii"))
def test_any_one_character_change_gets_the_same_verdict(position: int, replacement: str) -> None:
    token = raw_token(HEADER, good_claims(sub="557058:x"))
    i = position % len(token)
    mutated = token[:i] + replacement + token[i + 1 :]
    assert ours(mutated, [APP]) == reference(mutated, [APP])
