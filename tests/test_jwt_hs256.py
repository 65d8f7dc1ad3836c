"""The hand-written HS256 path (``jwt/hs256.py``) agrees with PyJWT, token for token.

PyJWT is the reference: for every token of a corpus (valid, tampered, expired, malformed in
each segment) both must accept the same tokens with the same claims and refuse the rest with
the same error code; minted tokens must be byte-identical to ``jwt.encode``.
"""

from __future__ import annotations

import functools
import json
import time
import types
from typing import Any

import jwt as pyjwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt_corpus import b64, claim_cases, malformed_cases

from connect_settings.jwt import hs256
from connect_settings.jwt.errors import TokenError
from connect_settings.jwt.tokens import translate_error

SECRET = "a-shared-secret-of-reasonable-length-0123456789"
REQUIRE = ("iss", "iat", "exp")
LEEWAY = 30


def raw_token(header: Any, claims: Any, secret: str = SECRET, *, raw: bool = False) -> str:
    """A token from arbitrary header/claims JSON (or raw bytes), signed with ``secret``."""
    h = header if raw else json.dumps(header, separators=(",", ":")).encode()
    p = claims if raw else json.dumps(claims, separators=(",", ":")).encode()
    signing_input = f"{b64(h)}.{b64(p)}"
    return f"{signing_input}.{hs256._sign(signing_input, secret)}"


def reference(token: str, secret: str = SECRET) -> tuple[str, Any]:
    """PyJWT's verdict, as the code path before hs256.py reached it: claims read unverified
    (to find the tenant), then the token verified."""
    try:
        unverified = pyjwt.api_jwt.decode_complete(token, options={"verify_signature": False})
    except pyjwt.PyJWTError:
        return ("error", "malformed_token")
    if not isinstance(unverified["payload"], dict):
        return ("error", "malformed_token")
    try:
        header = unverified["header"]
        if header.get("alg") != "HS256":
            return ("error", "wrong_algorithm")
        claims = pyjwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            leeway=LEEWAY,
            options={"require": list(REQUIRE), "verify_aud": False},
        )
    except pyjwt.PyJWTError as err:
        return ("error", translate_error(err).code)
    return ("ok", claims)


def ours(token: str, secret: str = SECRET) -> tuple[str, Any]:
    try:
        return ("ok", hs256.verify(hs256.parse(token), secret, leeway=LEEWAY, require=REQUIRE))
    except TokenError as err:
        return ("error", err.code)


def good_claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "client-key", "iat": now, "exp": now + 180, "qsh": "abc", **extra}


HEADER = {"alg": "HS256", "typ": "JWT"}


def corpus() -> list[tuple[str, str]]:
    now = int(time.time())
    valid = raw_token(HEADER, good_claims(sub="557058:x", context={"a": [1, "ü"]}))
    h, p, s = valid.split(".")
    cases = {
        "valid": valid,
        "valid, no typ": raw_token({"alg": "HS256"}, good_claims()),
        "valid, string kid": raw_token({**HEADER, "kid": "k"}, good_claims()),
        "valid, padded signature": f"{h}.{p}.{s}=",
        "wrong secret": raw_token(HEADER, good_claims(), secret=SECRET + "x"),
        "signature tampered": f"{h}.{p}.{s[:-2]}{'A' if s[-2] != 'A' else 'B'}{s[-1]}",
        "signature truncated": f"{h}.{p}.{s[:-1]}",
        "signature over-padded": f"{h}.{p}.{s}==",
        "payload padding x3": f"{h}.{p}===.{s}",
        "payload a string": raw_token(HEADER, "claims"),
        "alg none": raw_token({"alg": "none"}, good_claims()),
        "alg HS512": raw_token({"alg": "HS512"}, good_claims()),
        "alg RS256": raw_token({"alg": "RS256"}, good_claims()),
        "alg missing": raw_token({"typ": "JWT"}, good_claims()),
        "no iss": raw_token(HEADER, {k: v for k, v in good_claims().items() if k != "iss"}),
        "iss null": raw_token(HEADER, good_claims(iss=None)),
        "no exp": raw_token(HEADER, {k: v for k, v in good_claims().items() if k != "exp"}),
        "no iat": raw_token(HEADER, {k: v for k, v in good_claims().items() if k != "iat"}),
        "exp true": raw_token(HEADER, good_claims(exp=True)),
        **claim_cases(valid, raw_token, HEADER, good_claims, now),
        **malformed_cases(valid, raw_token, HEADER, good_claims),
    }  # fmt: skip
    return list(cases.items())


@functools.cache
def fresh_corpus() -> dict[str, str]:
    # Built when the first test runs, not at collection: its valid tokens live 180 s, and
    # the suite may reach this module minutes after collecting it.
    return dict(corpus())


@pytest.mark.parametrize("name", [n for n, _ in corpus()])
def test_same_verdict_as_pyjwt(name: str) -> None:
    token = fresh_corpus()[name]
    assert ours(token) == reference(token)


def test_corpus_is_not_trivial() -> None:
    verdicts = [reference(token)[0] for token in fresh_corpus().values()]
    assert verdicts.count("ok") >= 8 and verdicts.count("error") >= 30


@pytest.mark.parametrize(
    "header",
    [{**HEADER, "crit": ["b64"], "b64": True}, {**HEADER, "b64": True}],
    ids=["crit b64", "b64 true"],
)
def test_jws_extensions_are_refused_where_pyjwt_would_accept(header: dict[str, Any]) -> None:
    # The one intended difference: no Connect token uses JWS extensions.
    token = raw_token(header, good_claims())
    assert reference(token)[0] == "ok"
    assert ours(token) == ("error", "malformed_token")


def test_long_tokens_are_refused_before_parsing() -> None:
    token = raw_token(HEADER, good_claims(pad="x" * hs256.MAX_TOKEN_LENGTH))
    assert ours(token) == ("error", "malformed_token")


@pytest.mark.parametrize("segment", [0, 1, 2])
def test_a_lone_surrogate_is_malformed(segment: int) -> None:
    # PyJWT itself raises UnicodeEncodeError here, so this one has no reference verdict.
    parts = raw_token(HEADER, good_claims()).split(".")
    parts[segment] = parts[segment][:4] + "\udc80" + parts[segment][5:]
    assert ours(".".join(parts)) == ("error", "malformed_token")


def test_header_memo_returns_copies() -> None:
    token = raw_token(HEADER, good_claims())
    first = hs256.parse(token).header
    first["alg"] = "none"
    assert hs256.parse(token).header["alg"] == "HS256"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    # PyJWT (2.10 and later) refuses to encode a non-string "iss"; we never mint one.
    claims=st.dictionaries(st.text(max_size=10), json_values, max_size=6).filter(
        lambda claims: isinstance(claims.get("iss", ""), str)
    ),
    secret=st.text(min_size=1, max_size=64),
)
def test_minted_tokens_are_byte_identical_to_pyjwt(claims: dict[str, Any], secret: str) -> None:
    expected = pyjwt.encode(claims, secret, algorithm="HS256", headers={"typ": "JWT"})
    assert hs256.mint(claims, secret) == expected


@settings(max_examples=300, deadline=None)
@given(
    position=st.integers(min_value=0),
    # ASCII, plus characters the base64 decoder must refuse before it sees them.
    replacement=st.characters(codec="ascii") | st.sampled_from(["é", "☃", "\u00a0"]),
)
def test_any_one_character_change_gets_the_same_verdict(position: int, replacement: str) -> None:
    token = raw_token(HEADER, good_claims(sub="557058:x"))
    i = position % len(token)
    mutated = token[:i] + replacement + token[i + 1 :]
    assert ours(mutated) == reference(mutated)


def _clock_verdict(check: Any) -> str:
    try:
        check()
    except TokenError as err:
        return err.code
    return "ok"


@settings(max_examples=500, deadline=None)
@given(
    times=st.fixed_dictionaries(
        {},
        optional={
            name: st.integers(-100, 100) | st.sampled_from(["5", 7.9, -3.5])
            for name in ("iat", "nbf", "exp")
        },
    ),
    first=st.integers(-100, 100),
    later=st.integers(-200, 200),  # the clock may also step back
    leeway=st.sampled_from([0, 1, 30]),
)
def test_a_kept_token_s_clock_gets_check_claims_verdict(
    times: dict[str, Any], first: int, later: int, leeway: int
) -> None:
    """auth keeps (not before, expires) of a session token that passed check_claims, and checks
    only those again on a repeat: at any time after, the verdict must be check_claims' own."""
    base = 1_800_000_000
    claims = {name: v + base if isinstance(v, int) else v for name, v in times.items()}
    now = base + first
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hs256, "time", types.SimpleNamespace(time=lambda: now))
        if _clock_verdict(lambda: hs256.check_claims(claims, leeway=leeway, require=())) != "ok":
            return  # never kept
        kept = hs256.clock_of(claims)
        now = base + first + later
        assert _clock_verdict(lambda: hs256.check_clock(*kept, leeway=leeway)) == _clock_verdict(
            lambda: hs256.check_claims(claims, leeway=leeway, require=())
        )
