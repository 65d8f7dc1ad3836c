"""Independent check against ``atlassian-jwt`` (npm), the library atlassian-connect-express uses.

atlassian-jwt is not a perfect oracle: where it departs from Atlassian's Java reference
(PROTOCOL.md section 2 and the 79 Java-generated cases) the tests below model its behaviour in
:func:`model_canonical` and assert that the *only* differences are those deviations:

``path_escape``
    ACE and ``fromMethodAndUrl`` take the path from Node's legacy ``url.parse``, which
    percent-encodes ``' " < > ^ ` { | }`` (and spaces) in it; the Java host hashes the raw path,
    so an app path holding ``'`` hashes differently (the reference case "BasePath RFC3986
    Subdelimiters" shows it).
``prefix_strip``
    the app's base path is stripped as a plain string prefix, so base ``/wiki`` turns
    ``/wikipedia/x`` into ``/pedia/x`` (documented in PROTOCOL.md).
``name_order``
    parameters are sorted by their *decoded* names (``Object.keys(query).sort()``); Java sorts
    by the percent-encoded names, so ``a0`` and ``a:`` (``a%3A``), or ``~`` and ``é``, come out
    in opposite orders.
``proto``
    a parameter named ``__proto__`` is dropped.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

import pytest

from connect_settings.jwt.canonical import (
    canonical_request_from_url,
    query_string_hash_from_url,
)
from connect_settings.jwt.errors import TokenError
from connect_settings.jwt.tokens import mint_hs256, read_unverified, verify_hs256
from tests.node_support import AtlassianJwt, install_atlassian_jwt

pytestmark = pytest.mark.node

DATA_FILE = Path(__file__).resolve().parent / "data" / "jwt-signed-urls.json"
HOST = "https://app.example.com"
SECRET = "shared-secret-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ"
ALL_DEVIATIONS = frozenset({"path_escape", "prefix_strip", "name_order", "proto"})

#: Characters Node's legacy url.parse() percent-encodes wherever they appear.
NODE_AUTO_ESCAPE = {ch: f"%{ord(ch):02X}" for ch in "\t\n\r \"'<>\\^`{|}"}


@pytest.fixture(scope="session")
def atlassian_jwt(tmp_path_factory: pytest.TempPathFactory) -> AtlassianJwt:
    return install_atlassian_jwt(tmp_path_factory.mktemp("atlassian-jwt"))


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- A model of atlassian-jwt's canonical request -------------------------------------------


def _rfc3986(text: str) -> str:
    return quote(text, safe="~")


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-be", errors="surrogatepass")


def model_canonical(
    method: str, url: str, base_path: str = "", deviations: Collection[str] = ()
) -> str:
    """PROTOCOL.md section 2, plus the named atlassian-jwt deviations (module docstring)."""
    unknown = set(deviations) - ALL_DEVIATIONS
    assert not unknown, unknown
    parts = urlsplit(url)
    path = parts.path
    if "path_escape" in deviations:
        path = "".join(NODE_AUTO_ESCAPE.get(ch, ch) for ch in path)
    base = base_path.rstrip("/")
    if "prefix_strip" in deviations:
        if path.startswith(base):
            path = path[len(base) :]
    elif base and (path == base or path.startswith(base + "/")):
        path = path[len(base) :]
    path = path or "/"
    if not path.startswith("/"):
        path = "/" + path
    path = path.replace("&", "%26")
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]

    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True, errors="replace"):
        if name == "jwt" or (name == "__proto__" and "proto" in deviations):
            continue
        params.setdefault(name, []).append(value)
    name_key = _utf16 if "name_order" in deviations else _rfc3986
    query = "&".join(
        f"{_rfc3986(name)}={','.join(_rfc3986(v) for v in sorted(params[name], key=_utf16))}"
        for name in sorted(params, key=name_key)
    )
    return f"{method.upper()}&{path}&{query}"


def explain(method: str, url: str, base_path: str) -> frozenset[str]:
    """The deviations that, each on its own, change the canonical request of this request."""
    ours = model_canonical(method, url, base_path)
    return frozenset(
        d for d in ALL_DEVIATIONS if model_canonical(method, url, base_path, {d}) != ours
    )


# --- Generated requests ---------------------------------------------------------------------

NAME_POOL = [
    "a", "b", "A", "B", "a1", "a10", "ids", "x-y", "x.y", "x_y", "x~y", "JWT", "jwt2", "Jwt",
    "a:", "a0", "~", "é", "名前", "😀", "\uff21", "a b", "a+b", "a*", "a%", "q[]", "f(x)", "",
    "user_id", "xdm_e", "cp", "lic", "tz", "loc",
]  # fmt: skip
VALUE_CHARS = "abcXYZ019 +,-._~*!'():/?#[]@$&;=%\"<>\\^`{|}éü宮崎駿😀🎉\uff21\ufffd\ue000"
PATH_CHARS = "abcxyz019-._~!$&()*+,;=:@"
PATH_RARE_CHARS = "'{|}^"


def _random_text(rng: random.Random, alphabet: str, max_len: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_len)))


def _encode_component(rng: random.Random, text: str) -> str:
    style = rng.randrange(5)
    if style == 0:
        return quote_plus(text, safe="")
    if style == 1:
        return quote(text, safe="")
    if style == 2:
        return quote_plus(text, safe="*~!'()").replace("~", "%7E")
    if style == 3:
        return quote(text, safe="*~!'():/@$,;").lower()  # lower-case hex escapes
    return quote_plus(text, safe="*!'(),:/@")


def _random_path(rng: random.Random) -> str:
    segments = []
    for _ in range(rng.randint(0, 4)):
        segment = _random_text(rng, PATH_CHARS, 6)
        if rng.random() < 0.04:
            segment += rng.choice(PATH_RARE_CHARS)
        if rng.random() < 0.3:
            segment += quote(_random_text(rng, VALUE_CHARS, 3), safe="")
        segments.append(segment)
    path = "/" + "/".join(segments)
    if rng.random() < 0.2:
        path += "/"
    return path


def generated_request(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    pieces = []
    for _ in range(rng.randint(0, 7)):
        name = rng.choice(NAME_POOL) if rng.random() < 0.9 else _random_text(rng, VALUE_CHARS, 5)
        if name == "jwt":
            continue
        if rng.random() < 0.1:
            pieces.append(_encode_component(rng, name))  # valueless
            continue
        value = _random_text(rng, VALUE_CHARS, 10)
        pieces.append(f"{_encode_component(rng, name)}={_encode_component(rng, value)}")
        if rng.random() < 0.3:  # repeat the name with another value
            other = _random_text(rng, VALUE_CHARS, 6)
            pieces.append(f"{_encode_component(rng, name)}={_encode_component(rng, other)}")
    if rng.random() < 0.05:
        pieces.append(rng.choice(["bad=%FF", "bad=%C3%28", "bad=%E5%AE", "%ff=1"]))
    if rng.random() < 0.3:
        pieces.insert(rng.randint(0, len(pieces)), "jwt=header.payload.signature")
    rng.shuffle(pieces)
    base_path = rng.choice(["", "", "/base", "/base/app"])
    path = base_path + _random_path(rng)
    query = "&".join(pieces)
    method = rng.choice(["GET", "get", "Post", "PUT", "delete"])
    return {
        "method": method,
        "url": f"{HOST}{path}" + (f"?{query}" if query or rng.random() < 0.1 else ""),
        "base_path": base_path,
    }


GENERATED = [generated_request(seed) for seed in range(400)]


def node_item(method: str, url: str, base_path: str) -> dict[str, Any]:
    item: dict[str, Any] = {"method": method, "url": url}
    if base_path:
        item["baseUrl"] = HOST + base_path
    return item


def load_cases() -> list[dict[str, Any]]:
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    cases = []
    for case in data["tests"]:
        base = "/base" if case["name"] == "Add-on baseUrl contains path" else ""
        cases.append({**case, "method": case["canonicalUrl"].split("&", 1)[0], "base_path": base})
    return cases


# --- (a) canonical requests -----------------------------------------------------------------


def test_installed_version(atlassian_jwt: AtlassianJwt) -> None:
    from tests.node_support import ATLASSIAN_JWT_VERSION

    assert atlassian_jwt.run_ok("version", [{}]) == [ATLASSIAN_JWT_VERSION]


def test_reference_cases_agree_except_path_escaping(atlassian_jwt: AtlassianJwt) -> None:
    cases = load_cases()
    items = [node_item(c["method"], c["signedUrl"], c["base_path"]) for c in cases]
    results = atlassian_jwt.run_ok("canonical", items)
    differing = {}
    for case, js in zip(cases, results, strict=True):
        ours = canonical_request_from_url(case["method"], case["signedUrl"], case["base_path"])
        assert ours == case["canonicalUrl"]
        assert js["qsh"] == sha256_hex(js["canonical"])
        model = model_canonical(case["method"], case["signedUrl"], case["base_path"])
        assert model == ours
        if js["canonical"] != ours:
            differing[case["name"]] = js["canonical"]
        else:
            assert js["qsh"] == query_string_hash_from_url(
                case["method"], case["signedUrl"], case["base_path"]
            )
    # The only reference case atlassian-jwt gets wrong: a "'" in the path becomes %27.
    assert differing == {
        "BasePath RFC3986 Subdelimiters": "GET&/path!$%26%27()*+,;=&a=b",
        "BasePath RFC3986 Subdelimiters (uri)": "GET&/path!$%26%27()*+,;=&a=b",
    }


def test_generated_requests_agree_modulo_known_deviations(atlassian_jwt: AtlassianJwt) -> None:
    items = [node_item(g["method"], g["url"], g["base_path"]) for g in GENERATED]
    results = atlassian_jwt.run_ok("canonical", items)
    tally: Counter[str] = Counter()
    for request, js in zip(GENERATED, results, strict=True):
        method, url, base_path = request["method"], request["url"], request["base_path"]
        ours = canonical_request_from_url(method, url, base_path)
        # The model without deviations is our algorithm, and with them it is atlassian-jwt's.
        assert model_canonical(method, url, base_path) == ours, request
        assert model_canonical(method, url, base_path, ALL_DEVIATIONS) == js["canonical"], request
        assert js["qsh"] == sha256_hex(js["canonical"])
        why = explain(method, url, base_path)
        if why:
            assert js["canonical"] != ours, request
            tally.update(why)
        else:
            assert js["canonical"] == ours, request
            assert js["qsh"] == query_string_hash_from_url(method, url, base_path)
            tally["agree"] += 1
    # Most requests agree outright, and the generator does reach both deviations it can.
    assert tally["agree"] >= len(GENERATED) // 2, tally
    assert tally["name_order"] > 0, tally
    assert tally["path_escape"] > 0, tally
    assert "prefix_strip" not in tally, "generated paths start on a base-path boundary"


@pytest.mark.parametrize(
    ("path_and_query", "base_path", "ours", "js"),
    [
        pytest.param(
            "/wikipedia/x", "/wiki", "GET&/wikipedia/x&", "GET&/pedia/x&", id="prefix_strip"
        ),
        pytest.param("/wiki/x", "/wiki", "GET&/x&", "GET&/x&", id="prefix_strip-boundary"),
        pytest.param("/p'q", "", "GET&/p'q&", "GET&/p%27q&", id="path_escape-quote"),
        pytest.param("/a{b}|c^", "", "GET&/a{b}|c^&", "GET&/a%7Bb%7D%7Cc%5E&", id="path_escape"),
        pytest.param("/p?a0=1&a%3A=2", "", "GET&/p&a%3A=2&a0=1", "GET&/p&a0=1&a%3A=2", id="names"),
        pytest.param(
            "/p?~=1&%C3%A9=2", "", "GET&/p&%C3%A9=2&~=1", "GET&/p&~=1&%C3%A9=2", id="names2"
        ),
        pytest.param("/p?__proto__=1&b=2", "", "GET&/p&__proto__=1&b=2", "GET&/p&b=2", id="proto"),
        # Agreements that are easy to get wrong: repeated values in UTF-16 order (an emoji,
        # a surrogate pair, sorts before U+FF21), and '+', '*', '~' and invalid UTF-8.
        pytest.param(
            "/p?v=%EF%BC%A1&v=%F0%9F%98%80",
            "",
            "GET&/p&v=%F0%9F%98%80,%EF%BC%A1",
            "GET&/p&v=%F0%9F%98%80,%EF%BC%A1",
            id="utf16-value-order",
        ),
        pytest.param(
            "/p?a=1+%2B+1*&b=%7e&c=%FF",
            "",
            "GET&/p&a=1%20%2B%201%2A&b=~&c=%EF%BF%BD",
            "GET&/p&a=1%20%2B%201%2A&b=~&c=%EF%BF%BD",
            id="plus-star-tilde-invalid",
        ),
    ],
)
def test_documented_differences(
    atlassian_jwt: AtlassianJwt, path_and_query: str, base_path: str, ours: str, js: str
) -> None:
    url = HOST + path_and_query
    (got,) = atlassian_jwt.run_ok("canonical", [node_item("GET", url, base_path)])
    assert got["canonical"] == js
    assert canonical_request_from_url("GET", url, base_path) == ours
    assert model_canonical("GET", url, base_path, ALL_DEVIATIONS) == js


# --- (b) tokens minted by atlassian-jwt -------------------------------------------------------


def test_atlassian_jwt_tokens_verify_and_carry_our_qsh(atlassian_jwt: AtlassianJwt) -> None:
    now = int(time.time())
    requests = [*GENERATED[:150]]
    requests += [
        {"method": c["method"], "url": c["signedUrl"], "base_path": c["base_path"]}
        for c in load_cases()
    ]
    claims = {"iss": "client-ключ", "sub": "557058:ユーザー", "iat": now, "exp": now + 180}
    items = [
        {**node_item(r["method"], r["url"], r["base_path"]), "claims": claims, "secret": SECRET}
        for r in requests
    ]
    tokens = atlassian_jwt.run_ok("sign_request", items)
    agreed = 0
    for request, token in zip(requests, tokens, strict=True):
        method, url, base_path = request["method"], request["url"], request["base_path"]
        header, _ = read_unverified(token)
        assert header == {"typ": "JWT", "alg": "HS256"}
        verified = verify_hs256(token, SECRET, leeway=0)
        assert {k: verified[k] for k in claims} == claims
        js_qsh = sha256_hex(model_canonical(method, url, base_path, ALL_DEVIATIONS))
        assert verified["qsh"] == js_qsh
        if not explain(method, url, base_path):
            assert verified["qsh"] == query_string_hash_from_url(method, url, base_path)
            agreed += 1
        else:
            # A request atlassian-jwt canonicalises differently: its qsh is not ours.
            assert verified["qsh"] != query_string_hash_from_url(method, url, base_path)
    assert agreed >= len(requests) // 2


def test_atlassian_jwt_tokens_with_varied_claims_and_secrets(atlassian_jwt: AtlassianJwt) -> None:
    now = int(time.time())
    cases = [
        ({"iss": "a", "iat": now, "exp": now + 60}, SECRET),
        ({"iss": "ü", "iat": now, "exp": now + 60, "context": {"user": {"name": "宮崎"}}}, SECRET),
        ({"iss": "a", "iat": now, "exp": now + 60, "aud": ["x"], "n": 1.5, "t": True}, SECRET),
        ({"iss": "a", "iat": now, "exp": now + 60, "emoji": "😀"}, "sécret-🔑-" + "k" * 40),
        ({"iss": "a", "iat": now, "exp": now + 60, "qsh": "context-qsh"}, "s" * 200),
    ]
    tokens = atlassian_jwt.run_ok("encode", [{"payload": p, "secret": s} for p, s in cases])
    for (payload, secret), token in zip(cases, tokens, strict=True):
        assert verify_hs256(token, secret, leeway=0) == payload
        with pytest.raises(TokenError) as info:
            verify_hs256(token, secret + "x")
        assert info.value.code == "bad_signature"


# --- (c) tokens we mint, read by atlassian-jwt --------------------------------------------------


def test_our_tokens_decode_with_atlassian_jwt(atlassian_jwt: AtlassianJwt) -> None:
    claim_sets = [
        {"iss": "com.example.app", "qsh": query_string_hash_from_url("GET", g["url"])}
        for g in GENERATED[:50]
    ]
    claim_sets += [
        {
            "iss": "app",
            "sub": "557058:ユーザー",
            "aud": ["client-key"],
            "context": {"a": [1, None]},
        },
        {"iss": "app", "qsh": "context-qsh", "note": '😀 \u0000 "quoted" \\ /'},
    ]
    secrets = [SECRET, "sécret-🔑-" + "k" * 40]
    items, expected = [], []
    for i, claims in enumerate(claim_sets):
        secret = secrets[i % len(secrets)]
        token = mint_hs256(claims, secret)
        items.append({"token": token, "secret": secret})
        expected.append(read_unverified(token)[1])
        items.append({"token": token, "secret": secret + "x"})
        expected.append(None)
    results = atlassian_jwt.run("decode", items)
    for want, got in zip(expected, results, strict=True):
        if want is None:
            assert "Signature verification failed" in got["error"]
        else:
            assert got == {"ok": want}


# --- (d) a page load into the demo app, signed by atlassian-jwt ------------------------------

PAGE_PATH = "/configure"
PAGE_QUERY = "xdm_e=https%3A%2F%2Fexample.atlassian.net&cp=&lic=none&tz=UTC&loc=en-US"


def sign_page_load(
    atlassian_jwt: AtlassianJwt, client_key: str, secret: str, query: str = PAGE_QUERY
) -> str:
    """A page token as a Node host library would mint it: atlassian-jwt computes the qsh of
    GET ``/configure?<query>`` against the app's baseUrl and signs with the shared secret."""
    from connect_settings.conf import connect_settings

    now = int(time.time())
    item = {
        "method": "GET",
        "url": f"{connect_settings.BASE_URL.rstrip('/')}{PAGE_PATH}?{query}",
        "baseUrl": connect_settings.BASE_URL,
        "claims": {
            "iss": client_key,
            "sub": "557058:node-user",
            "iat": now,
            "exp": now + 180,
            "context": {},
        },
        "secret": secret,
    }
    (token,) = atlassian_jwt.run_ok("sign_request", [item])
    return token


@pytest.mark.django_db
def test_page_load_signed_by_atlassian_jwt_is_accepted(
    atlassian_jwt: AtlassianJwt, client: Any, connect_tenant: Any
) -> None:
    token = sign_page_load(atlassian_jwt, connect_tenant.client_key, connect_tenant.shared_secret)
    response = client.get(f"{PAGE_PATH}?{PAGE_QUERY}&jwt={token}")
    assert response.status_code == 200, response.content[:500]
    assert response["X-acpt"]
    session = read_unverified(response["X-acpt"])[1]
    assert session["aud"] == [connect_tenant.client_key]
    assert session["sub"] == "557058:node-user"


@pytest.mark.django_db
def test_page_load_with_a_wrong_qsh_is_refused(
    atlassian_jwt: AtlassianJwt, client: Any, connect_tenant: Any
) -> None:
    # Signed by atlassian-jwt for lic=active, presented with lic=none.
    other_query = PAGE_QUERY.replace("lic=none", "lic=active")
    token = sign_page_load(
        atlassian_jwt, connect_tenant.client_key, connect_tenant.shared_secret, other_query
    )
    response = client.get(f"{PAGE_PATH}?{PAGE_QUERY}&jwt={token}")
    assert response.status_code == 401
    assert response.json()["error"] == "qsh_mismatch"
    # The same token is fine on the request it was signed for.
    assert client.get(f"{PAGE_PATH}?{other_query}&jwt={token}").status_code == 200


@pytest.mark.django_db
def test_page_load_signed_with_another_secret_is_refused(
    atlassian_jwt: AtlassianJwt, client: Any, connect_tenant: Any
) -> None:
    token = sign_page_load(atlassian_jwt, connect_tenant.client_key, SECRET)
    response = client.get(f"{PAGE_PATH}?{PAGE_QUERY}&jwt={token}")
    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"
