"""Canonical request and qsh: Atlassian's interoperability cases, PROTOCOL.md section 2 traps
and property-based invariants."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from connect_settings.jwt.canonical import (
    CONTEXT_QSH,
    canonical_query,
    canonical_request,
    canonical_request_from_url,
    canonical_uri,
    query_string_hash,
    query_string_hash_from_url,
)
from connect_settings.jwt.tokens import verify_hs256

DATA_FILE = Path(__file__).resolve().parent / "data" / "jwt-signed-urls.json"
SHARED_FILE = Path(__file__).resolve().parents[1].parent / "shared/reference/jwt-signed-urls.json"

#: The one case whose app baseUrl has a path (``https://example.com/base``).
BASE_PATHS = {"Add-on baseUrl contains path": "/base"}

#: What a canonical query may contain: unreserved characters, upper-case %XX, '=', '&', ','.
CANONICAL_QUERY_ALPHABET = re.compile(r"(?:[A-Za-z0-9\-._~=&,]|%[0-9A-F]{2})*")

HYPOTHESIS = settings(deadline=None, database=None, max_examples=200)


def load_cases() -> tuple[str, list[dict[str, Any]]]:
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return data["secret"], data["tests"]


SECRET, CASES = load_cases()


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def case_method(case: dict[str, Any]) -> str:
    return case["canonicalUrl"].split("&", 1)[0]


def case_token(case: dict[str, Any]) -> str:
    (token,) = parse_qs(urlsplit(case["signedUrl"]).query)["jwt"]
    return token


# --- The test data itself -------------------------------------------------------------------


def test_data_file_has_every_case() -> None:
    assert len(CASES) == 79
    assert len({case["name"] for case in CASES}) == 79
    assert SECRET
    assert set(BASE_PATHS) <= {case["name"] for case in CASES}


def test_bundled_copy_matches_shared_reference() -> None:
    if not SHARED_FILE.exists():
        pytest.skip(f"{SHARED_FILE} is not present (only the bundled copy is)")
    assert DATA_FILE.read_bytes() == SHARED_FILE.read_bytes()


# --- Atlassian's 79 interoperability cases -------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_canonical_request_matches_reference(case: dict[str, Any]) -> None:
    base_path = BASE_PATHS.get(case["name"], "")
    got = canonical_request_from_url(case_method(case), case["signedUrl"], base_path)
    assert got == case["canonicalUrl"]


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_signed_url_token_carries_our_qsh(case: dict[str, Any]) -> None:
    base_path = BASE_PATHS.get(case["name"], "")
    # The tokens expired in 2014: a leeway reaching back to then keeps every other check.
    leeway = time.time() - 1_300_000_000
    claims = verify_hs256(case_token(case), SECRET, leeway=leeway)

    ours = canonical_request_from_url(case_method(case), case["signedUrl"], base_path)
    assert claims["qsh"] == sha256_hex(ours)
    assert claims["qsh"] == query_string_hash_from_url(
        case_method(case), case["signedUrl"], base_path
    )
    assert claims["qsh"] == sha256_hex(case["canonicalUrl"])


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_reference_tokens_fail_with_another_secret() -> None:
    from connect_settings.jwt.errors import TokenError

    leeway = time.time() - 1_300_000_000
    with pytest.raises(TokenError) as info:
        verify_hs256(case_token(CASES[0]), SECRET + "x", leeway=leeway)
    assert info.value.code == "bad_signature"


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_reference_tokens_are_expired_without_leeway() -> None:
    from connect_settings.jwt.errors import TokenError

    with pytest.raises(TokenError) as info:
        verify_hs256(case_token(CASES[0]), SECRET)
    assert info.value.code == "token_expired"


# --- PROTOCOL.md section 2 traps --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "base_path", "expected"),
    [
        ("/wikipedia/x", "/wiki", "/wikipedia/x"),
        ("/wiki/x", "/wiki", "/x"),
        ("/wiki", "/wiki", "/"),
        ("/wiki/", "/wiki", "/"),
        ("/wiki/x", "/wiki/", "/x"),
        ("/wiki/x", "wiki", "/x"),
        ("/wikix", "/wiki", "/wikix"),
        ("/other/wiki/x", "/wiki", "/other/wiki/x"),
        ("/base/test", "/base", "/test"),
        ("/a/b/c", "/a/b", "/c"),
        ("/a/bc", "/a/b", "/a/bc"),
        ("/test", "", "/test"),
        ("/test", "/", "/test"),
    ],
)
def test_base_path_is_stripped_on_a_segment_boundary(
    path: str, base_path: str, expected: str
) -> None:
    assert canonical_uri(path, base_path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", "/"),
        ("/", "/"),
        ("test", "/test"),
        ("/test/", "/test"),
        ("/test//", "/test/"),
        ("/a&b", "/a%26b"),
        ("/a&&b&/", "/a%26%26b%26"),
        ("/a%26b", "/a%26b"),
        ("/a%2Fb", "/a%2Fb"),
        ("/path!$&'()*+,;=", "/path!$%26'()*+,;="),
        ("/path-._~", "/path-._~"),
    ],
)
def test_canonical_uri(path: str, expected: str) -> None:
    assert canonical_uri(path) == expected


def test_canonical_uri_strips_base_before_trailing_slash_and_ampersand() -> None:
    assert canonical_uri("/wiki/a&b/", "/wiki") == "/a%26b"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("a=b+c", "a=b%20c", id="plus-is-space"),
        pytest.param("a=b%2Bc", "a=b%2Bc", id="encoded-plus-stays-plus"),
        pytest.param("a=b%20c", "a=b%20c", id="space"),
        pytest.param("a=%7E&b=~", "a=~&b=~", id="tilde-literal"),
        pytest.param("a=%7e", "a=~", id="tilde-lower-hex"),
        pytest.param("a=*", "a=%2A", id="asterisk"),
        pytest.param("a=!'()", "a=%21%27%28%29", id="js-escape-set"),
        pytest.param("a=%c3%a9", "a=%C3%A9", id="upper-case-hex"),
        pytest.param("a=-._~", "a=-._~", id="unreserved"),
        pytest.param(
            "ids=.1&ids=.2&ids=%3A1&ids=%3A2", "ids=.1,.2,%3A1,%3A2", id="repeated-decoded-sort"
        ),
        pytest.param(
            "ids=%3A2&ids=.2&ids=%3A1&ids=.1", "ids=.1,.2,%3A1,%3A2", id="repeated-any-order"
        ),
        pytest.param("v=b&v=a&v=a", "v=a,a,b", id="repeated-duplicates-kept"),
        # Java and JS sort String values by UTF-16 code units: a surrogate pair (an emoji)
        # sorts before U+E000-U+FFFF (here U+FF21 and U+FFFD), though after U+D7FF.
        pytest.param(
            "v=%EF%BC%A1&v=%F0%9F%98%80", "v=%F0%9F%98%80,%EF%BC%A1", id="repeated-utf16-order"
        ),
        pytest.param(
            "v=%EF%BF%BD&v=%F0%9F%98%80", "v=%F0%9F%98%80,%EF%BF%BD", id="repeated-utf16-fffd"
        ),
        pytest.param(
            "v=%F0%9F%98%80&v=%ED%9F%BF", "v=%ED%9F%BF,%F0%9F%98%80", id="repeated-utf16-d7ff"
        ),
        pytest.param("v=%2C&v=a", "v=%2C,a", id="comma-in-value-encoded"),
        pytest.param("b=1&a=1&B=1&A=1", "A=1&B=1&a=1&b=1", id="code-point-names"),
        pytest.param("a10=1&a1=2", "a1=2&a10=1", id="name-prefix-first"),
        pytest.param("a&b=1", "a=&b=1", id="valueless"),
        pytest.param("a=&b", "a=&b=", id="empty-and-valueless"),
        pytest.param("jwt=x&JWT=y&jwt2=z&Jwt=w", "JWT=y&Jwt=w&jwt2=z", id="only-jwt-dropped"),
        pytest.param("jwt=x", "", id="only-jwt"),
        pytest.param("jwt=x&jwt=y&a=1", "a=1", id="repeated-jwt"),
        pytest.param("", "", id="empty"),
        pytest.param("&&", "", id="only-separators"),
        pytest.param("a=1&&b=2", "a=1&b=2", id="empty-pieces"),
        pytest.param("%231=value", "%231=value", id="encoded-name"),
        pytest.param("a%20b=c", "a%20b=c", id="space-in-name"),
        pytest.param("a+b=c", "a%20b=c", id="plus-in-name"),
        pytest.param("a=b=c", "a=b%3Dc", id="equals-in-value"),
        pytest.param("a=%", "a=%25", id="lone-percent"),
        pytest.param("a=%zz", "a=%25zz", id="bad-percent-escape"),
        pytest.param("a=%FF", "a=%EF%BF%BD", id="invalid-utf8-byte"),
        pytest.param("a=%C3", "a=%EF%BF%BD", id="truncated-utf8"),
        pytest.param("a=%C3%28&%ff=1", "%EF%BF%BD=1&a=%EF%BF%BD%28", id="invalid-utf8-name"),
        pytest.param("a=%ED%A0%80", "a=%EF%BF%BD%EF%BF%BD%EF%BF%BD", id="encoded-surrogate"),
        pytest.param("a=%F0%9F%98%80", "a=%F0%9F%98%80", id="astral"),
    ],
)
def test_canonical_query_traps(query: str, expected: str) -> None:
    assert canonical_query(query) == expected


def test_canonical_query_accepts_mappings_and_pairs() -> None:
    expected = "a=1,2&b=x%20y"
    assert canonical_query({"b": "x y", "a": ["2", "1"], "jwt": "t"}) == expected
    assert canonical_query([("a", "2"), ("b", "x y"), ("jwt", "t"), ("a", "1")]) == expected


def test_no_parameters_leave_a_trailing_ampersand() -> None:
    assert canonical_request("get", "/installed") == "GET&/installed&"
    assert canonical_request("POST", "/installed", "jwt=abc") == "POST&/installed&"


def test_canonical_request_joins_the_three_parts() -> None:
    got = canonical_request("put", "/wiki/rest/x/", "b=2&a=1", base_path="/wiki")
    assert got == "PUT&/rest/x&a=1&b=2"


def test_from_url_ignores_scheme_host_and_fragment() -> None:
    url = "https://tenant.example:8443/base/p/?z=1&a=2#frag"
    assert canonical_request_from_url("get", url, "/base") == "GET&/p&a=2&z=1"
    assert canonical_request_from_url("GET", "/p?z=1&a=2") == "GET&/p&a=2&z=1"


def test_query_string_hash_is_lower_hex_sha256_of_canonical() -> None:
    qsh = query_string_hash("GET", "/test", "param=value")
    assert qsh == sha256_hex("GET&/test&param=value")
    assert re.fullmatch(r"[0-9a-f]{64}", qsh)
    assert qsh != query_string_hash("GET", "/test", "param=value2")
    assert qsh != query_string_hash("POST", "/test", "param=value")
    assert qsh != query_string_hash("GET", "/test2", "param=value")


def test_context_qsh_literal() -> None:
    assert CONTEXT_QSH == "context-qsh"


# --- Property-based invariants ---------------------------------------------------------------

#: Text that UTF-8 can encode (no lone surrogates): what a decoded query can contain.
utf8_text = st.text(st.characters(codec="utf-8"), max_size=12)
param_names = utf8_text.filter(lambda name: name != "jwt")
param_pairs = st.lists(st.tuples(param_names, utf8_text), max_size=8)


def parse_canonical_query(query: str) -> Counter[tuple[str, str]]:
    """Decode a canonical query back into a multiset of (name, value) pairs."""
    pairs: Counter[tuple[str, str]] = Counter()
    if not query:
        return pairs
    for entry in query.split("&"):
        name, joined = entry.split("=", 1)
        for value in joined.split(","):
            pairs[(unquote(name, errors="strict"), unquote(value, errors="strict"))] += 1
    return pairs


@HYPOTHESIS
@given(pairs=param_pairs, data=st.data())
def test_parameter_order_does_not_matter(pairs: list[tuple[str, str]], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(pairs))
    assert canonical_query(urlencode(shuffled)) == canonical_query(urlencode(pairs))


@HYPOTHESIS
@given(pairs=param_pairs, token=st.text(max_size=40), data=st.data())
def test_jwt_parameter_does_not_change_the_query(
    pairs: list[tuple[str, str]], token: str, data: st.DataObject
) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(pairs)))
    with_jwt = [*pairs[:position], ("jwt", token), *pairs[position:]]
    assert canonical_query(urlencode(with_jwt)) == canonical_query(urlencode(pairs))
    path = "/p"
    assert query_string_hash("GET", path, urlencode(with_jwt)) == query_string_hash(
        "GET", path, urlencode(pairs)
    )


@HYPOTHESIS
@given(query=st.text())
def test_canonical_query_alphabet(query: str) -> None:
    assert CANONICAL_QUERY_ALPHABET.fullmatch(canonical_query(query))


@HYPOTHESIS
@given(pairs=param_pairs)
def test_canonical_query_alphabet_for_encoded_queries(pairs: list[tuple[str, str]]) -> None:
    assert CANONICAL_QUERY_ALPHABET.fullmatch(canonical_query(urlencode(pairs)))


@HYPOTHESIS
@given(
    method=st.text(st.characters(categories=["Lu", "Ll"], max_codepoint=127), min_size=1),
    path=st.text(),
    query=st.text(),
)
def test_method_is_case_insensitive(method: str, path: str, query: str) -> None:
    expected = canonical_request(method.upper(), path, query)
    assert canonical_request(method.lower(), path, query) == expected
    assert canonical_request(method.swapcase(), path, query) == expected
    assert expected.startswith(method.upper() + "&")


@HYPOTHESIS
@given(params=st.dictionaries(param_names, utf8_text, max_size=8))
def test_round_trip_from_a_dict(params: dict[str, str]) -> None:
    query = canonical_query(urlencode(params))
    assert parse_canonical_query(query) == Counter(params.items())


@HYPOTHESIS
@given(pairs=param_pairs)
def test_round_trip_with_repeated_names(pairs: list[tuple[str, str]]) -> None:
    query = canonical_query(urlencode(pairs))
    assert parse_canonical_query(query) == Counter(pairs)
    names = [entry.split("=", 1)[0] for entry in query.split("&")] if query else []
    assert names == sorted(set(names)), "each name once, in code-point order of its encoding"


@HYPOTHESIS
@given(method=st.text(), path=st.text(), query=st.text(), base_path=st.text())
def test_never_raises_for_arbitrary_text(
    method: str, path: str, query: str, base_path: str
) -> None:
    # st.text() draws no lone surrogates: a decoded request cannot hold one (Django decodes
    # with replacement) and UTF-8, which the hash needs, cannot encode one.
    canonical = canonical_request(method, path, query, base_path)
    assert canonical.count("&") >= 2
    assert re.fullmatch(r"[0-9a-f]{64}", query_string_hash(method, path, query, base_path))


@HYPOTHESIS
@given(method=st.text(), url=st.text(), base_path=st.text())
@example(method="GET", url="//[x", base_path="")
@example(method="GET", url="http://[::1", base_path="")
def test_from_url_raises_nothing_but_value_error(method: str, url: str, base_path: str) -> None:
    # urlsplit() rejects an unbalanced IPv6 bracket in the network location: the one way a
    # *URL* (unlike a path and a query, above) is refused, and only with ValueError.
    try:
        canonical = canonical_request_from_url(method, url, base_path)
    except ValueError:
        assert "[" in url or "]" in url
    else:
        assert canonical == canonical_request(
            method, urlsplit(url).path, urlsplit(url).query, base_path
        )
        assert query_string_hash_from_url(method, url, base_path) == sha256_hex(canonical)


@HYPOTHESIS
@given(
    segments=st.lists(st.text(st.characters(codec="ascii", exclude_characters="/?#"), min_size=1)),
    base=st.sampled_from(["", "/wiki", "/base/path"]),
)
def test_canonical_uri_shape(segments: list[str], base: str) -> None:
    path = base + "/" + "/".join(segments)
    uri = canonical_uri(path, base)
    assert uri.startswith("/")
    assert "&" not in uri
    assert uri == "/" or not uri.endswith("/")


@HYPOTHESIS
@given(value=st.one_of(utf8_text, st.text("AZaz09._~-+%/ é", max_size=12)))
def test_the_unreserved_shortcut_encodes_as_quote_does(value: str) -> None:
    # canonical._encode skips quote() for values it would return unchanged.
    from connect_settings.jwt.canonical import _encode

    assert _encode(value) == quote(value, safe="~", encoding="utf-8", errors="strict")
