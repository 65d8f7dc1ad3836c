"""The authentication pipeline through real views: page loads, AJAX tokens, middleware."""

from __future__ import annotations

import time
from typing import Any

import jwt as pyjwt
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connect_settings.auth import mint_session_token
from connect_settings.jwt.tokens import mint_hs256, read_unverified
from connect_settings.testing import DEFAULT_SECRET, make_tenant, page_token, signed_url

pytestmark = pytest.mark.django_db

URL = "/configure?xdm_e=https%3A%2F%2Fexample.atlassian.net&cp=&lic=none&tz=UTC&loc=en-US"
OTHER_SECRET = "other-tenant-secret-0123456789-0123456789-abc"


def _error(response: Any) -> str:
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"].startswith("JWT")
    return response.json()["error"]


def test_page_load_renders_with_session_token(client, connect_tenant):
    response = client.get(signed_url("test-client-key", DEFAULT_SECRET, URL))
    assert response.status_code == 200
    session = response["X-acpt"]
    header, claims = read_unverified(session)
    assert header["alg"] == "HS256"
    assert claims["iss"] == "com.example.connect-settings-demo"
    assert claims["aud"] == ["test-client-key"]
    assert claims["sub"] == "557058:test-user"
    assert claims["exp"] - claims["iat"] == 900
    assert "qsh" not in claims
    # The same token is offered to the page's scripts.
    assert f'<meta name="token" content="{session}">' in response.content.decode()
    # Framing is allowed for the tenant's origin only, not by X-Frame-Options.
    assert response["Content-Security-Policy"] == "frame-ancestors https://example.atlassian.net"
    assert "X-Frame-Options" not in response


def test_session_token_is_accepted_by_check_valid_token(client, connect_tenant):
    from connect_settings import store

    store.set("colour", "green", "test-client-key")
    session = client.get(signed_url("test-client-key", DEFAULT_SECRET, URL))["X-acpt"]
    response = client.get("/api/settings", HTTP_AUTHORIZATION=f"JWT {session}")
    assert response.status_code == 200
    assert response.json() == {"settings": {"colour": "green"}}
    # Sliding expiry: every authenticated answer carries a fresh token.
    assert response["X-acpt"] and response["X-acpt"] != "" and read_unverified(response["X-acpt"])


def test_context_jwt_accepted_on_ajax_but_not_on_page_load(client, connect_tenant):
    token = page_token("test-client-key", DEFAULT_SECRET, "GET", "/x", qsh="context-qsh")
    assert client.get("/api/settings", HTTP_AUTHORIZATION=f"JWT {token}").status_code == 200
    response = client.get(f"{URL}&jwt={token}")
    assert response.status_code == 401
    assert _error(response) == "context_token_not_allowed"


def test_session_token_refused_on_page_load(client, connect_tenant):
    session = mint_session_token(connect_tenant, "user")
    response = client.get(f"{URL}&jwt={session}")
    assert response.status_code == 401
    assert _error(response) == "context_token_not_allowed"


def test_page_token_for_another_url_refused_on_ajax(client, connect_tenant):
    token = page_token("test-client-key", DEFAULT_SECRET, "GET", URL)
    response = client.get("/api/settings", HTTP_AUTHORIZATION=f"JWT {token}")
    assert response.status_code == 401
    assert _error(response) == "qsh_mismatch"


def test_tenant_a_session_token_cannot_act_for_tenant_b(client, connect_tenant):
    from connect_settings import store

    tenant_b = make_tenant("tenant-b", OTHER_SECRET)
    store.set("colour", "red", "tenant-b")
    session_a = mint_session_token(connect_tenant, "user")
    response = client.get("/api/settings", HTTP_AUTHORIZATION=f"JWT {session_a}")
    assert response.json() == {"settings": {}}  # A sees A's (empty) settings only
    # Re-addressing A's token to B (aud) breaks its signature.
    _, claims = read_unverified(session_a)
    forged = mint_hs256({**claims, "aud": [tenant_b.client_key]}, DEFAULT_SECRET)
    response = client.get("/api/settings", HTTP_AUTHORIZATION=f"JWT {forged}")
    assert response.status_code == 401
    assert _error(response) == "bad_signature"


def test_context_jwt_of_tenant_a_signed_as_b_is_refused(client, connect_tenant):
    make_tenant("tenant-b", OTHER_SECRET)
    token = page_token("tenant-b", DEFAULT_SECRET, "GET", "/x", qsh="context-qsh")
    response = client.get("/api/settings", HTTP_AUTHORIZATION=f"JWT {token}")
    assert response.status_code == 401
    assert _error(response) == "bad_signature"


@pytest.mark.parametrize(
    ("token_factory", "code"),
    [
        (lambda: "", "missing_token"),
        (lambda: "abc.def", "malformed_token"),
        (lambda: "a.b.c", "malformed_token"),
        (lambda: "x" * 10_000, "malformed_token"),
        (
            lambda: pyjwt.encode(
                {"iss": "test-client-key", "exp": int(time.time()) + 60, "qsh": "context-qsh"},
                None,
                algorithm="none",
            ),
            "wrong_algorithm",
        ),
        (lambda: page_token("nobody", DEFAULT_SECRET, "GET", URL), "unknown_tenant"),
        (lambda: page_token("test-client-key", "wrong-secret" * 4, "GET", URL), "bad_signature"),
        (
            lambda: page_token("test-client-key", DEFAULT_SECRET, "GET", URL, ttl=-60),
            "token_expired",
        ),
        (
            lambda: page_token(
                "test-client-key", DEFAULT_SECRET, "GET", URL, now=time.time() + 300
            ),
            "token_not_yet_valid",
        ),
        (
            lambda: page_token("test-client-key", DEFAULT_SECRET, "GET", "/configure?lic=x"),
            "qsh_mismatch",
        ),
        (lambda: page_token("test-client-key", DEFAULT_SECRET, "POST", URL), "qsh_mismatch"),
        (
            lambda: mint_hs256(
                {"iss": "test-client-key", "qsh": "x", "exp": 2**40}, DEFAULT_SECRET
            ).replace(".", ".", 1),
            "qsh_mismatch",
        ),
        (
            lambda: pyjwt.encode(
                {"iss": "test-client-key", "iat": int(time.time()), "qsh": "x"},
                DEFAULT_SECRET,
                algorithm="HS256",
            ),
            "missing_claim",
        ),
        (
            lambda: pyjwt.encode(
                {"iss": "test-client-key", "iat": int(time.time()), "exp": int(time.time()) + 60},
                DEFAULT_SECRET,
                algorithm="HS256",
            ),
            "missing_claim",
        ),
        (
            lambda: pyjwt.encode(
                {"iss": "test-client-key", "exp": int(time.time()) + 60, "qsh": "x"},
                DEFAULT_SECRET,
                algorithm="HS512",
            ),
            "wrong_algorithm",
        ),
    ],
    ids=[
        "empty",
        "two-parts",
        "garbage",
        "huge",
        "alg-none",
        "unknown-tenant",
        "wrong-secret",
        "expired",
        "iat-future",
        "qsh-other-url",
        "qsh-other-method",
        "qsh-arbitrary",
        "no-exp",
        "no-qsh",
        "hs512",
    ],
)
def test_page_load_refusals(client, connect_tenant, token_factory, code):
    token = token_factory()
    response = client.get(f"{URL}&jwt={token}")
    assert response.status_code == 401
    assert _error(response) == code
    body = response.content.decode()
    assert DEFAULT_SECRET not in body
    if token:
        assert token not in body


def test_leeway_accepts_small_clock_skew(client, connect_tenant):
    token = page_token("test-client-key", DEFAULT_SECRET, "GET", URL, now=time.time() + 20)
    assert client.get(f"{URL}&jwt={token}").status_code == 200
    token = page_token("test-client-key", DEFAULT_SECRET, "GET", URL, ttl=-20)
    assert client.get(f"{URL}&jwt={token}").status_code == 200


def test_authorization_header_variants(client, connect_tenant):
    token = page_token("test-client-key", DEFAULT_SECRET, "GET", URL)
    assert client.get(URL, HTTP_AUTHORIZATION=f"JWT {token}").status_code == 200
    assert client.get(URL, HTTP_AUTHORIZATION=f"jwt {token}").status_code == 200
    response = client.get(URL, HTTP_AUTHORIZATION="JWT ")
    assert _error(response) == "malformed_token"
    response = client.get(URL, HTTP_AUTHORIZATION="JWT a b")
    assert _error(response) == "malformed_token"
    # Another scheme is not ours: the request simply has no Connect token.
    response = client.get(URL, HTTP_AUTHORIZATION="Bearer abc")
    assert _error(response) == "missing_token"


def test_two_jwt_parameters_are_refused(client, connect_tenant):
    token = page_token("test-client-key", DEFAULT_SECRET, "GET", URL)
    response = client.get(f"{URL}&jwt={token}&jwt={token}")
    assert _error(response) == "malformed_token"


def test_uninstalled_tenant_tokens_refused(client, connect_tenant):
    connect_tenant.installed = False
    connect_tenant.save()
    from connect_settings.tenants import invalidate

    invalidate("test-client-key")
    response = client.get(signed_url("test-client-key", DEFAULT_SECRET, URL))
    assert _error(response) == "uninstalled_tenant"
    session = mint_session_token(connect_tenant, "u")
    response = client.get("/api/settings", HTTP_AUTHORIZATION=f"JWT {session}")
    assert _error(response) == "uninstalled_tenant"


def test_authentication_costs_at_most_one_query(client, connect_tenant, settings):
    from connect_settings.tenants import invalidate

    session = mint_session_token(connect_tenant, "u")
    invalidate("test-client-key")
    with CaptureQueriesContext(connection) as cold:
        response = client.get("/api/settings", HTTP_AUTHORIZATION=f"JWT {session}")
    assert response.status_code == 200
    tenant_queries = [q for q in cold.captured_queries if "connect_settings_tenant" in q["sql"]]
    assert len(tenant_queries) == 1
    with CaptureQueriesContext(connection) as warm:
        client.get("/api/settings", HTTP_AUTHORIZATION=f"JWT {session}")
    assert not [q for q in warm.captured_queries if "connect_settings_tenant" in q["sql"]]


def test_unknown_issuers_do_not_hit_the_database_twice(client, connect_tenant):
    token = page_token("forged-issuer", DEFAULT_SECRET, "GET", URL)
    client.get(f"{URL}&jwt={token}")
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(f"{URL}&jwt={token}")
    assert _error(response) == "unknown_tenant"
    assert len(ctx.captured_queries) == 0


def test_app_base_url_path_is_stripped_from_qsh(rf, settings):
    from connect_settings.auth import request_qsh_matches
    from connect_settings.jwt.canonical import query_string_hash

    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "BASE_URL": "https://app.example.com/connect",
    }
    request = rf.get("/connect/configure?lic=none&jwt=x")
    # The product signs the module URL relative to the app's base URL.
    assert request_qsh_matches(request, query_string_hash("GET", "/configure", "lic=none"))
    assert not request_qsh_matches(
        request, query_string_hash("GET", "/connect/configure", "lic=none")
    )
    # Stripping is on a segment boundary: /connector is not under /connect.
    other = rf.get("/connector/configure?lic=none")
    assert request_qsh_matches(other, query_string_hash("GET", "/connector/configure", "lic=none"))


def test_middleware_sets_request_connect_without_decorator(rf, connect_tenant):
    from connect_settings.middleware import ConnectMiddleware

    def view(request: Any) -> Any:
        from django.http import HttpResponse

        return HttpResponse(request.connect.client_key if request.connect else "-")

    token = page_token("test-client-key", DEFAULT_SECRET, "GET", "/free?x=1")
    request = rf.get(f"/free?x=1&jwt={token}")
    middleware = ConnectMiddleware(view)
    middleware.process_request(request)
    middleware.process_view(request, view, (), {})
    response = middleware.process_response(request, view(request))
    assert response.content == b"test-client-key"
    assert response["X-acpt"]
    bad = rf.get("/free?x=2&jwt=" + token)
    middleware.process_request(bad)
    middleware.process_view(bad, view, (), {})
    assert bad.connect is None and bad.connect_error.code == "qsh_mismatch"


@pytest.mark.parametrize(
    ("raw_uri", "expected"),
    [
        ("/configure?lic=none", "/configure"),
        ("/a%2Fb/c?x=1", "/a%2Fb/c"),  # the client's own encoding is kept for the qsh
        ("//evil.example/configure?lic=none", "/configure"),  # not read as a host: falls back
        ("//[x/configure", "/configure"),  # would make urlsplit raise
        ("http://host.example/configure?x", "/configure"),  # absolute form: falls back
    ],
)
def test_request_path_from_raw_uri(rf, raw_uri, expected):
    from connect_settings.auth import request_path

    request = rf.get("/configure", RAW_URI=raw_uri)
    assert request_path(request) == expected


def test_the_decorators_add_the_session_header_without_the_middleware(rf, connect_tenant):
    """With ConnectMiddleware the header is added on the way out (once); without it, by the
    decorator itself, for sync and async views alike."""
    from asgiref.sync import async_to_sync
    from django.http import HttpResponse

    from connect_settings.decorators import check_valid_token

    @check_valid_token
    def view(request: Any) -> HttpResponse:
        return HttpResponse(b"ok")

    @check_valid_token
    async def async_view(request: Any) -> HttpResponse:
        return HttpResponse(b"ok")

    token = mint_session_token(connect_tenant, "557058:decorated")
    for call in (view, async_to_sync(async_view)):
        request = rf.get("/anywhere", HTTP_AUTHORIZATION=f"JWT {token}")  # no middleware ran
        response = call(request)
        assert response.status_code == 200
        assert read_unverified(response["X-acpt"])[1]["sub"] == "557058:decorated"


class _OwnDict(dict):
    """A headers store that is not a plain dict: add_session_header takes the public API."""


@pytest.mark.parametrize("headers_store", ["django", "other"])
def test_the_session_header_is_added_once_and_a_view_s_own_is_kept(
    rf, connect_tenant, headers_store
):
    from django.http import HttpResponse

    from connect_settings.auth import authenticate_request
    from connect_settings.middleware import add_session_header

    def response(**headers: str) -> HttpResponse:
        answer = HttpResponse(b"ok", headers=headers)
        if headers_store == "other":
            answer.headers._store = _OwnDict(answer.headers._store)
        return answer

    token = mint_session_token(connect_tenant, "557058:header")
    request = rf.get("/anywhere", HTTP_AUTHORIZATION=f"JWT {token}")
    request.connect = authenticate_request(request)

    added = add_session_header(request, response())
    added = add_session_header(request, added)  # the decorator and the middleware both ran
    assert [name for name, _ in added.items()] == ["Content-Type", "X-acpt"]
    assert read_unverified(added["x-acpt"])[1]["sub"] == "557058:header"

    kept = add_session_header(request, response(**{"x-ACPT": "the view's own"}))
    assert [(n, v) for n, v in kept.items() if n.lower() == "x-acpt"] == [
        ("x-ACPT", "the view's own")
    ]


@pytest.mark.parametrize(
    ("iss", "aud", "authenticates_as", "lookups"),
    [
        # PROTOCOL.md: aud[0] names the tenant when it is a known one (looked up once) ...
        ("jira:some-product-id", ["aud-tenant"], "aud-tenant", 1),
        # ... else iss does.
        ("iss-tenant", ["not-installed-here"], "iss-tenant", 2),
        ("iss-tenant", None, "iss-tenant", 1),
        ("not-installed-here", ["also-not-here"], None, 2),
    ],
)
def test_a_host_token_names_its_tenant_by_aud_then_iss(
    rf, monkeypatch, iss, aud, authenticates_as, lookups
):
    from connect_settings import auth
    from connect_settings.exceptions import AuthenticationFailed

    make_tenant("aud-tenant", DEFAULT_SECRET)
    make_tenant("iss-tenant", DEFAULT_SECRET)
    extra: dict[str, Any] = {"iss": iss} | ({"aud": aud} if aud is not None else {})
    token = page_token(iss, DEFAULT_SECRET, "GET", "/anywhere?x=1", extra=extra)
    asked: list[str] = []
    real_get_tenant = auth.get_tenant

    def counted(client_key: str, **kwargs: Any) -> Any:  # the real lookup, counted
        asked.append(client_key)
        return real_get_tenant(client_key, **kwargs)

    monkeypatch.setattr(auth, "get_tenant", counted)
    request = rf.get(f"/anywhere?x=1&jwt={token}")
    if authenticates_as is None:
        with pytest.raises(AuthenticationFailed) as failed:
            auth.authenticate_request(request)
        assert failed.value.code == "unknown_tenant"
    else:
        assert auth.authenticate_request(request).client_key == authenticates_as
    assert len(asked) == lookups, asked
