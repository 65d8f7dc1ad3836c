"""Token verification and minting: pinned algorithms, required claims, leeway, safe errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from connect_settings.jwt.errors import KeyUnavailable, TokenError
from connect_settings.jwt.tokens import (
    MAX_TOKEN_LENGTH,
    mint_hs256,
    mint_rs256,
    read_unverified,
    verify_hs256,
    verify_rs256,
)
from connect_settings.testing import generate_rsa_key, public_pem

SECRET = "a-shared-secret-long-enough-for-hs512-0123456789-abcdefghijklmnopqrstuvw"
APP_BASE_URL = "https://app.example.com"
CLIENT_KEY = "client-key-4c2e"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return generate_rsa_key()


@pytest.fixture(scope="module")
def pem(rsa_key: rsa.RSAPrivateKey) -> str:
    return public_pem(rsa_key).decode("ascii")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def hand_made_hs256(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """An HMAC-SHA256 token built without PyJWT (which refuses some of the keys used here)."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def host_claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": CLIENT_KEY,
        "sub": "557058:0000-user",
        "iat": now,
        "exp": now + 180,
        "qsh": "0" * 64,
    }
    claims.update(extra)
    return claims


def install_claims(**extra: Any) -> dict[str, Any]:
    return host_claims(**{"aud": [APP_BASE_URL], **extra})


def expect_error(code: str, call: Callable[[], Any]) -> TokenError:
    with pytest.raises(TokenError) as info:
        call()
    assert info.value.code == code, info.value.message
    return info.value


# --- HS256 ----------------------------------------------------------------------------------


def test_valid_hs256_token() -> None:
    token = mint_hs256(host_claims(), SECRET)
    claims = verify_hs256(token, SECRET)
    assert claims["iss"] == CLIENT_KEY
    assert claims["qsh"] == "0" * 64


def test_hs256_wrong_secret_is_bad_signature() -> None:
    token = mint_hs256(host_claims(), SECRET)
    expect_error("bad_signature", lambda: verify_hs256(token, SECRET + "!"))


def test_mint_hs256_adds_iat_and_exp() -> None:
    token = mint_hs256({"iss": "app-key", "qsh": "x"}, SECRET, ttl=180, now=1_700_000_000)
    header, claims = read_unverified(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert claims == {"iss": "app-key", "qsh": "x", "iat": 1_700_000_000, "exp": 1_700_000_180}


def test_mint_hs256_keeps_explicit_times() -> None:
    token = mint_hs256({"iss": "a", "iat": 5, "exp": 10}, SECRET, now=1_700_000_000)
    assert read_unverified(token)[1] == {"iss": "a", "iat": 5, "exp": 10}


@pytest.mark.parametrize("alg_none", ["none", "None", "NONE"])
def test_alg_none_is_rejected(alg_none: str) -> None:
    unsigned = f"{b64url_json({'alg': alg_none, 'typ': 'JWT'})}.{b64url_json(host_claims())}."
    expect_error("wrong_algorithm", lambda: verify_hs256(unsigned, SECRET))


def test_alg_none_is_rejected_even_with_a_lying_header() -> None:
    unsigned = f"{b64url_json({'alg': 'none', 'typ': 'JWT'})}.{b64url_json(host_claims())}."
    # A caller that read the header elsewhere and passes a forged one still gets no bypass.
    expect_error("wrong_algorithm", lambda: verify_hs256(unsigned, SECRET, header={"alg": "HS256"}))


def test_alg_none_with_a_signature_is_rejected() -> None:
    token = hand_made_hs256({"alg": "none", "typ": "JWT"}, host_claims(), SECRET.encode())
    expect_error("wrong_algorithm", lambda: verify_hs256(token, SECRET))


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_algorithms_are_rejected(alg: str) -> None:
    token = pyjwt.encode(host_claims(), SECRET, algorithm=alg)
    expect_error("wrong_algorithm", lambda: verify_hs256(token, SECRET))


def test_rs256_token_given_to_verify_hs256(rsa_key: rsa.RSAPrivateKey, pem: str) -> None:
    token = mint_rs256(install_claims(), rsa_key, kid="k1")
    expect_error("wrong_algorithm", lambda: verify_hs256(token, SECRET))
    expect_error("wrong_algorithm", lambda: verify_hs256(token, pem))


def test_tampered_hs256_signature() -> None:
    token = mint_hs256(host_claims(), SECRET)
    head, body, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    expect_error("bad_signature", lambda: verify_hs256(f"{head}.{body}.{flipped}", SECRET))


def test_tampered_hs256_claims() -> None:
    token = mint_hs256(host_claims(), SECRET)
    head, _, signature = token.split(".")
    forged = b64url_json(host_claims(iss="another-tenant"))
    expect_error("bad_signature", lambda: verify_hs256(f"{head}.{forged}.{signature}", SECRET))


def test_expired_token() -> None:
    now = int(time.time())
    token = mint_hs256(host_claims(iat=now - 600, exp=now - 60), SECRET)
    expect_error("token_expired", lambda: verify_hs256(token, SECRET))


def test_expired_within_leeway_is_accepted() -> None:
    now = int(time.time())
    token = mint_hs256(host_claims(iat=now - 600, exp=now - 10), SECRET)
    assert verify_hs256(token, SECRET, leeway=30)["iss"] == CLIENT_KEY
    expect_error("token_expired", lambda: verify_hs256(token, SECRET, leeway=0))


def test_iat_in_the_future_beyond_leeway() -> None:
    now = int(time.time())
    token = mint_hs256(host_claims(iat=now + 120, exp=now + 300), SECRET)
    expect_error("token_not_yet_valid", lambda: verify_hs256(token, SECRET, leeway=30))


def test_iat_in_the_future_within_leeway() -> None:
    now = int(time.time())
    token = mint_hs256(host_claims(iat=now + 10, exp=now + 190), SECRET)
    assert verify_hs256(token, SECRET, leeway=30)["iat"] == now + 10


def test_nbf_in_the_future_is_not_yet_valid() -> None:
    now = int(time.time())
    token = mint_hs256(host_claims(nbf=now + 120), SECRET)
    expect_error("token_not_yet_valid", lambda: verify_hs256(token, SECRET))


@pytest.mark.parametrize("claim", ["exp", "iat", "iss"])
def test_missing_required_claim(claim: str) -> None:
    claims = host_claims()
    del claims[claim]
    token = pyjwt.encode(claims, SECRET, algorithm="HS256")
    error = expect_error("missing_claim", lambda: verify_hs256(token, SECRET))
    assert claim in error.message


def test_non_numeric_exp_is_rejected() -> None:
    token = pyjwt.encode(host_claims(exp="tomorrow"), SECRET, algorithm="HS256")
    with pytest.raises(TokenError) as info:
        verify_hs256(token, SECRET)
    assert info.value.status == 401


# --- Malformed input ------------------------------------------------------------------------

MALFORMED = {
    "empty": "",
    "one-part": "abc",
    "two-parts": "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0",
    "four-parts": "a.b.c.d",
    "dots-only": "..",
    "garbage-base64": "!!!.@@@.###",
    "header-not-json": f"{b64url(b'not json')}.{b64url_json({'iss': 'x'})}.c2ln",
    "header-not-object": f"{b64url_json([1, 2])}.{b64url_json({'iss': 'x'})}.c2ln",
    "claims-not-json": f"{b64url_json({'alg': 'HS256'})}.{b64url(b'{nope')}.c2ln",
    "claims-not-object": f"{b64url_json({'alg': 'HS256'})}.{b64url_json(['x'])}.c2ln",
    "whitespace": " . . ",
    "huge": "a" * (MAX_TOKEN_LENGTH + 1),
    "huge-three-parts": "eyJhbGciOiJIUzI1NiJ9." + "A" * 100_000 + ".c2ln",
    "non-ascii": "é.é.é",
}


@pytest.mark.parametrize("token", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_tokens(token: str, pem: str) -> None:
    expect_error("malformed_token", lambda: read_unverified(token))
    expect_error("malformed_token", lambda: verify_hs256(token, SECRET))
    expect_error("malformed_token", lambda: verify_rs256(token, pem, audience=[APP_BASE_URL]))


def test_token_at_the_size_limit_is_still_read() -> None:
    token = mint_hs256(host_claims(pad="x" * 5000), SECRET)
    assert len(token) <= MAX_TOKEN_LENGTH
    assert verify_hs256(token, SECRET)["pad"] == "x" * 5000


# --- RS256 (signed installs) ----------------------------------------------------------------


def test_valid_rs256_token(rsa_key: rsa.RSAPrivateKey, pem: str) -> None:
    token = mint_rs256(install_claims(), rsa_key, kid="prod/key-1")
    header, _ = read_unverified(token)
    assert header["kid"] == "prod/key-1"
    assert header["alg"] == "RS256"
    claims = verify_rs256(token, pem, audience=[APP_BASE_URL])
    assert claims["aud"] == [APP_BASE_URL]
    # A key object works as well as its PEM text.
    assert verify_rs256(token, rsa_key.public_key(), audience=[APP_BASE_URL])["iss"] == CLIENT_KEY


def test_rs256_accepts_any_listed_audience(rsa_key: rsa.RSAPrivateKey, pem: str) -> None:
    token = mint_rs256(install_claims(aud=["https://alt.example.com"]), rsa_key, kid="k")
    audiences = [APP_BASE_URL, "https://alt.example.com"]
    assert verify_rs256(token, pem, audience=audiences)["iss"] == CLIENT_KEY


def test_rs256_audience_mismatch(rsa_key: rsa.RSAPrivateKey, pem: str) -> None:
    token = mint_rs256(install_claims(aud=["https://evil.example.com"]), rsa_key, kid="k")
    expect_error("invalid_audience", lambda: verify_rs256(token, pem, audience=[APP_BASE_URL]))


def test_rs256_missing_audience(rsa_key: rsa.RSAPrivateKey, pem: str) -> None:
    token = mint_rs256(host_claims(), rsa_key, kid="k")
    expect_error("missing_claim", lambda: verify_rs256(token, pem, audience=[APP_BASE_URL]))


def test_rs256_wrong_key(rsa_key: rsa.RSAPrivateKey) -> None:
    token = mint_rs256(install_claims(), rsa_key, kid="k")
    other = public_pem(generate_rsa_key()).decode("ascii")
    expect_error("bad_signature", lambda: verify_rs256(token, other, audience=[APP_BASE_URL]))


def test_rs256_tampered_signature(rsa_key: rsa.RSAPrivateKey, pem: str) -> None:
    head, body, signature = mint_rs256(install_claims(), rsa_key, kid="k").split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[10] ^= 0x01
    tampered = f"{head}.{body}.{b64url(bytes(raw))}"
    expect_error("bad_signature", lambda: verify_rs256(tampered, pem, audience=[APP_BASE_URL]))


def test_rs256_expired(rsa_key: rsa.RSAPrivateKey, pem: str) -> None:
    now = int(time.time())
    token = mint_rs256(install_claims(iat=now - 900, exp=now - 300), rsa_key, kid="k")
    expect_error("token_expired", lambda: verify_rs256(token, pem, audience=[APP_BASE_URL]))


def test_hs256_token_given_to_verify_rs256(pem: str) -> None:
    token = mint_hs256(install_claims(), SECRET)
    expect_error("wrong_algorithm", lambda: verify_rs256(token, pem, audience=[APP_BASE_URL]))


def test_rs_hs_confusion_is_rejected(pem: str) -> None:
    """The classic attack: HMAC-sign with the (public) PEM text and hope the verifier uses
    the RSA public key as an HMAC secret."""
    claims = install_claims()
    forged = hand_made_hs256({"alg": "HS256", "typ": "JWT"}, claims, pem.encode("ascii"))
    # The forgery is a correct HMAC under the PEM text, so only the algorithm pin stops it.
    expect_error("wrong_algorithm", lambda: verify_rs256(forged, pem, audience=[APP_BASE_URL]))
    expect_error(
        "wrong_algorithm",
        lambda: verify_rs256(forged, pem, audience=[APP_BASE_URL], header={"alg": "RS256"}),
    )
    # ... and the same forgery claiming RS256 in its header does not verify either.
    lying = hand_made_hs256({"alg": "RS256", "typ": "JWT"}, claims, pem.encode("ascii"))
    expect_error("bad_signature", lambda: verify_rs256(lying, pem, audience=[APP_BASE_URL]))


# --- Error messages ---------------------------------------------------------------------------


def failing_calls(rsa_key: rsa.RSAPrivateKey, pem: str) -> list[tuple[str, str, Callable[[], Any]]]:
    now = int(time.time())
    valid = mint_hs256(host_claims(), SECRET)
    expired = mint_hs256(host_claims(iat=now - 900, exp=now - 300), SECRET)
    future = mint_hs256(host_claims(iat=now + 900, exp=now + 1000), SECRET)
    no_exp = pyjwt.encode({"iss": CLIENT_KEY, "iat": now}, SECRET, algorithm="HS256")
    wrong_aud = mint_rs256(install_claims(aud=["https://evil.example"]), rsa_key, kid="k")
    confused = hand_made_hs256({"alg": "HS256"}, install_claims(), pem.encode("ascii"))
    audience = [APP_BASE_URL]
    return [
        (valid, SECRET + "x", lambda: verify_hs256(valid, SECRET + "x")),
        (valid[:-3], SECRET, lambda: verify_hs256(valid[:-3], SECRET)),
        (expired, SECRET, lambda: verify_hs256(expired, SECRET)),
        (future, SECRET, lambda: verify_hs256(future, SECRET)),
        (no_exp, SECRET, lambda: verify_hs256(no_exp, SECRET)),
        (valid, pem, lambda: verify_rs256(valid, pem, audience=audience)),
        (wrong_aud, pem, lambda: verify_rs256(wrong_aud, pem, audience=audience)),
        (confused, pem, lambda: verify_rs256(confused, pem, audience=audience)),
        ("x." + valid, SECRET, lambda: verify_hs256("x." + valid, SECRET)),
    ]


def test_error_messages_never_contain_the_token_or_the_secret(
    rsa_key: rsa.RSAPrivateKey, pem: str
) -> None:
    calls = failing_calls(rsa_key, pem)
    codes = set()
    for token, secret, call in calls:
        with pytest.raises(TokenError) as info:
            call()
        error = info.value
        codes.add(error.code)
        for text in (str(error), repr(error), error.message):
            assert token not in text
            for part in token.split("."):
                assert len(part) < 8 or part not in text
            assert secret not in text
            assert CLIENT_KEY not in text
    assert codes == {
        "bad_signature",
        "token_expired",
        "token_not_yet_valid",
        "missing_claim",
        "wrong_algorithm",
        "invalid_audience",
        "malformed_token",
    }


def test_error_codes_and_statuses() -> None:
    assert TokenError().status == 401
    assert TokenError().code == "invalid_token"
    assert TokenError(code="bad_signature").message == "bad signature"
    assert KeyUnavailable().status == 503
    assert isinstance(KeyUnavailable(), TokenError)
