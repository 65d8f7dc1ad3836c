"""Hostile input: a catalogue of attacks on every endpoint, each with the status it must get.

Every answer must also be free of 5xx, tracebacks and secrets (shared secrets, secret
settings, the admin password, the encryption keys), and no stored row may change: every
table is checksummed before and after each attack (``django_migrations`` aside).

Runs in any Django process whose database is the app's: the runner (against gunicorn and
PostgreSQL) and pytest (against ``live_server``, on SQLite and PostgreSQL).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .rawhttp import Response, request
from .report import SuiteResult
from .world import Principal, World, none_token, resign, session_token

__all__ = ["Attack", "catalogue", "run_catalogue", "table_checksums"]

JSON = ("Content-Type", "application/json")
PAGE_QUERY = "lic=none&tz=UTC"


@dataclass
class Attack:
    name: str
    endpoint: str
    method: str
    target: str
    expect: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    #: The JSON ``error`` code expected (None: any, or not JSON).
    code: str | None = None
    #: Extra checks on the answer: a message when it fails.
    check: Callable[[Response], str | None] | None = None


def _j(value: Any) -> bytes:
    return json.dumps(value).encode()


def _auth(token: str) -> tuple[str, str]:
    return ("Authorization", f"JWT {token}")


def _bearer(token: str) -> tuple[str, str]:
    return ("Authorization", f"Bearer {token}")


# --- checksums ----------------------------------------------------------------------------------


def table_checksums() -> dict[str, str]:
    """sha256 of every table's rows (ordered), by table name, through Django's connection."""
    from django.db import connection

    out: dict[str, str] = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            if table == "django_migrations":
                continue
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT * FROM {quoted}")  # noqa: S608 - introspected names
            rows = sorted(repr(row) for row in cursor.fetchall())
            out[table] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return out


def _changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))


# --- the catalogue ------------------------------------------------------------------------------


def _install_payload(world: World, client_key: str, **overrides: Any) -> dict[str, Any]:
    payload = {
        "key": world.app_key,
        "clientKey": client_key,
        "sharedSecret": "attacker-chosen-secret-0123456789-0123456789",
        "baseUrl": "http://127.0.0.1:9/attacker",
        "productType": "jira",
        "eventType": "installed",
    }
    payload.update(overrides)
    return payload


def _rs256(world: World, claims: dict[str, Any], *, kid: Any, key: Any = None) -> str:
    # Signed by hand: PyJWT refuses to encode the malformed headers some attacks need.
    from jwt.algorithms import RSAAlgorithm

    from .world import b64

    now = int(time.time())
    body = {"iat": now, "exp": now + 180, "context": {}, **claims}
    body = {k: v for k, v in body.items() if v is not None}
    header = (
        {"typ": "JWT", "alg": "RS256"}
        if kid is None
        else {"typ": "JWT", "alg": "RS256", "kid": kid}
    )
    signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}"
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(
        signing.encode(), key or world.installer.private_key
    )
    return f"{signing}.{b64(signature)}"


def _install_claims(world: World, client_key: str, path: str) -> dict[str, Any]:
    from connect_settings.jwt.canonical import query_string_hash

    return {
        "iss": client_key,
        "aud": [world.app_url],
        "qsh": query_string_hash("POST", path, "", ""),
    }


def _page(world: World, t: Principal, method: str, url: str, **kw: Any) -> str:
    from connect_settings.testing import page_token

    return page_token(t.client_key, kw.pop("secret", t.secret), method, url, base_path="", **kw)


def _no_header(name: str) -> Callable[[Response], str | None]:
    def check(r: Response) -> str | None:
        return f"answer carries injected header {name}" if r.header(name) else None

    return check


def _not_in_body(*needles: str) -> Callable[[Response], str | None]:
    def check(r: Response) -> str | None:
        for needle in needles:
            if needle.encode() in r.body:
                return f"answer contains {needle[:30]!r}"
        return None

    return check


def catalogue(world: World, csrf: tuple[str, str]) -> list[Attack]:
    from connect_settings.testing import generate_rsa_key

    a, b, off, gone = world["a"], world["b"], world["disabled"], world["gone"]
    evil = f"resilience-evil-{uuid.uuid4().hex[:8]}"
    inst = _install_claims(world, evil, "/installed")
    out: list[Attack] = []

    def add(*args: Any, **kwargs: Any) -> None:
        out.append(Attack(*args, **kwargs))

    # /installed -------------------------------------------------------------------------------
    ep = "/installed"
    good_body = _j(_install_payload(world, evil))
    valid = world.installer.token(evil, "/installed")
    add("install: no token", ep, "POST", ep, 401, [JSON], good_body, "missing_token")
    add(
        "install: Basic auth",
        ep,
        "POST",
        ep,
        401,
        [JSON, ("Authorization", "Basic YTpi")],
        good_body,
        "missing_token",
    )
    add(
        "install: empty JWT header",
        ep,
        "POST",
        ep,
        401,
        [JSON, ("Authorization", "JWT ")],
        good_body,
        "malformed_token",
    )
    add(
        "install: JWT header with two parts",
        ep,
        "POST",
        ep,
        401,
        [JSON, ("Authorization", "JWT a b")],
        good_body,
        "malformed_token",
    )
    hs = _page(world, a, "POST", "/installed")
    add(
        "install: HS256 with a tenant's secret (overwrite a)",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(hs)],
        _j(_install_payload(world, a.client_key)),
        "wrong_algorithm",
    )
    add(
        "install: alg none",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(none_token(inst))],
        good_body,
        "wrong_algorithm",
    )
    for label, kid in [
        ("path traversal", "../../etc/passwd"),
        ("encoded traversal", "resilience/%2e%2e/x"),
        ("empty", ""),
        ("double slash", "a//b"),
        ("query", "kid?x=1"),
        ("absolute URL", "http://evil.example/key"),
        ("leading slash", "/etc/passwd"),
        ("backslash", "a\\b"),
        ("missing", None),
        ("300 characters", "k" * 300),
    ]:
        add(
            f"install: kid {label}",
            ep,
            "POST",
            ep,
            401,
            [JSON, _auth(_rs256(world, inst, kid=kid))],
            good_body,
            "invalid_kid",
        )
    # PyJWT refuses a non-string kid while reading the header: a malformed token.
    add(
        "install: kid not a string",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(_rs256(world, inst, kid=12))],
        good_body,
        "malformed_token",
    )
    add(
        "install: unknown kid",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(_rs256(world, inst, kid="resilience/unknown"))],
        good_body,
        "unknown_kid",
    )
    forged = _rs256(world, inst, kid=world.installer.kid, key=generate_rsa_key())
    add(
        "install: signed by another key",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(forged)],
        good_body,
        "bad_signature",
    )
    add(
        "install: cross-tenant (iss attacker, body a)",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(valid)],
        _j(_install_payload(world, a.client_key, baseUrl=a.base_url)),
        "issuer_mismatch",
    )
    add(
        "install: wrong audience",
        ep,
        "POST",
        ep,
        401,
        [
            JSON,
            _auth(
                _rs256(world, {**inst, "aud": ["https://evil.example"]}, kid=world.installer.kid)
            ),
        ],
        good_body,
        "invalid_audience",
    )
    expired = world.installer.token(evil, "/installed", now=time.time() - 3600)
    add("install: expired", ep, "POST", ep, 401, [JSON, _auth(expired)], good_body, "token_expired")
    add(
        "install: qsh of /uninstalled",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(world.installer.token(evil, "/uninstalled"))],
        good_body,
        "qsh_mismatch",
    )
    no_exp = _rs256(world, {**inst, "exp": None}, kid=world.installer.kid)
    add("install: no exp", ep, "POST", ep, 401, [JSON, _auth(no_exp)], good_body)
    from connect_settings.testing import public_pem

    confused = resign(valid, {"alg": "HS256"}, public_pem(world.installer.private_key).decode())
    add(
        "install: RS/HS confusion (public key as HMAC secret)",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(confused)],
        good_body,
        "wrong_algorithm",
    )
    add(
        "install: token in the query",
        ep,
        "POST",
        f"{ep}?jwt={valid}",
        401,
        [JSON],
        good_body,
        "missing_token",
    )
    add(
        "install: text/plain",
        ep,
        "POST",
        ep,
        415,
        [("Content-Type", "text/plain"), _auth(valid)],
        good_body,
        "unsupported_media_type",
    )
    add("install: no content type", ep, "POST", ep, 415, [_auth(valid)], good_body)
    add(
        "install: not JSON",
        ep,
        "POST",
        ep,
        400,
        [JSON, _auth(valid)],
        b"{clientKey:",
        "malformed_body",
    )
    add(
        "install: a JSON array",
        ep,
        "POST",
        ep,
        400,
        [JSON, _auth(valid)],
        b"[1,2]",
        "malformed_body",
    )
    add(
        "install: 70 KB body",
        ep,
        "POST",
        ep,
        400,
        [JSON, _auth(valid)],
        _j({**_install_payload(world, evil), "description": "x" * 70_000}),
        "body_too_large",
    )
    add(
        "install: 30,000 nested arrays",
        ep,
        "POST",
        ep,
        400,
        [JSON, _auth(valid)],
        b"[" * 30_000 + b"]" * 30_000,
        "malformed_body",
    )
    add(
        "install: invalid UTF-8",
        ep,
        "POST",
        ep,
        400,
        [JSON, _auth(valid)],
        b'{"clientKey": "\xff\xfe"}',
        "malformed_body",
    )
    add(
        "install: clientKey is a list",
        ep,
        "POST",
        ep,
        400,
        [JSON, _auth(valid)],
        _j(_install_payload(world, [evil])),
        "missing_field",
    )  # type: ignore[arg-type]
    add(
        "install: javascript: baseUrl",
        ep,
        "POST",
        ep,
        400,
        [JSON, _auth(valid)],
        _j(_install_payload(world, evil, baseUrl="javascript:alert(1)")),
        "invalid_field",
    )
    add(
        "install: 2,000-character sharedSecret",
        ep,
        "POST",
        ep,
        400,
        [JSON, _auth(valid)],
        _j(_install_payload(world, evil, sharedSecret="s" * 2000)),
        "invalid_field",
    )
    add(
        "install: another app's key",
        ep,
        "POST",
        ep,
        400,
        [JSON, _auth(valid)],
        _j(_install_payload(world, evil, key="com.evil.app")),
        "wrong_app_key",
    )
    add(
        "install: validly signed, host not allowed",
        ep,
        "POST",
        ep,
        403,
        [JSON, _auth(valid)],
        _j(_install_payload(world, evil, baseUrl="https://evil.example.com")),
        "host_not_allowed",
    )
    add("install: GET", ep, "GET", ep, 405, [], None, "method_not_allowed")

    # /uninstalled -----------------------------------------------------------------------------
    ep = "/uninstalled"
    body_a = _j({"clientKey": a.client_key, "eventType": "uninstalled"})
    add("uninstall a: no token", ep, "POST", ep, 401, [JSON], body_a, "missing_token")
    add(
        "uninstall a: HS256 with a's secret (lifecycle advisory)",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(_page(world, a, "POST", ep))],
        body_a,
        "wrong_algorithm",
    )
    add(
        "uninstall a: a's context JWT",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(_page(world, a, "POST", ep, qsh="context-qsh"))],
        body_a,
        "wrong_algorithm",
    )
    add(
        "uninstall a: a's session token",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(session_token(world, a))],
        body_a,
        "wrong_algorithm",
    )
    add(
        "uninstall a: signed for another tenant",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(world.installer.token(evil, ep))],
        body_a,
        "issuer_mismatch",
    )
    add(
        "uninstall a: qsh of /installed",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(world.installer.token(a.client_key, "/installed"))],
        body_a,
        "qsh_mismatch",
    )
    add(
        "uninstall: no clientKey",
        ep,
        "POST",
        ep,
        400,
        [JSON, _auth(world.installer.token(a.client_key, ep))],
        _j({}),
        "missing_field",
    )

    # /enabled and /disabled -------------------------------------------------------------------
    ep = "/disabled"
    body = _j({"clientKey": a.client_key})
    add("disable a: no token", ep, "POST", ep, 401, [JSON], body, "missing_token")
    add(
        "disable a: context JWT",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(_page(world, a, "POST", ep, qsh="context-qsh"))],
        body,
        "context_token_not_allowed",
    )
    add(
        "disable a: session token",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(session_token(world, a))],
        body,
        "context_token_not_allowed",
    )
    add(
        "disable a: iss a, signed with b's secret",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(_page(world, a, "POST", ep, secret=b.secret))],
        body,
        "bad_signature",
    )
    add(
        "disable a: b's valid token, body a",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(_page(world, b, "POST", ep))],
        body,
        "issuer_mismatch",
    )
    add(
        "disable a: RS256 install token",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(world.installer.token(a.client_key, ep))],
        body,
        "wrong_algorithm",
    )
    add(
        "disable a: token in the query",
        ep,
        "POST",
        f"{ep}?jwt={_page(world, a, 'POST', ep)}",
        401,
        [JSON],
        body,
        "missing_token",
    )
    add(
        "disable a: qsh of /enabled",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(_page(world, a, "POST", "/enabled"))],
        body,
        "qsh_mismatch",
    )
    add(
        "disable a: expired",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(_page(world, a, "POST", ep, now=time.time() - 3600))],
        body,
        "token_expired",
    )
    add(
        "disable a: alg none",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(none_token({"iss": a.client_key, "qsh": "x"}))],
        body,
        "wrong_algorithm",
    )
    hs512 = resign(_page(world, a, "POST", ep), {"alg": "HS512"}, a.secret)
    add("disable a: HS512", ep, "POST", ep, 401, [JSON, _auth(hs512)], body, "wrong_algorithm")
    add(
        "disable a: issued in the future",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(_page(world, a, "POST", ep, now=time.time() + 3600))],
        body,
    )
    add(
        "disable a: aud names b, signed by a",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(_page(world, a, "POST", ep, extra={"aud": [b.client_key]}))],
        body,
        "bad_signature",
    )
    ep = "/enabled"
    add(
        "enable: unknown issuer",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(_page(world, Principal("x", "nobody", "s" * 40, "", "", ""), "POST", ep))],
        _j({}),
        "unknown_tenant",
    )
    add(
        "enable: uninstalled tenant with its old secret",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(_page(world, gone, "POST", ep))],
        _j({"clientKey": gone.client_key}),
        "uninstalled_tenant",
    )
    add(
        "enable disabled tenant: signed with a's secret",
        ep,
        "POST",
        ep,
        401,
        [JSON, _auth(_page(world, off, "POST", ep, secret=a.secret))],
        _j({"clientKey": off.client_key}),
        "bad_signature",
    )
    add("enable: GET", ep, "GET", ep, 405, [], None, "method_not_allowed")

    # GET /configure (page load) ---------------------------------------------------------------
    page = f"/configure?{PAGE_QUERY}"

    def signed(t: Principal, url: str = page, **kw: Any) -> str:
        return f"{url}&jwt={_page(world, t, 'GET', url, **kw)}"

    add("page: no token", "/configure", "GET", page, 401, [], None, "missing_token")
    add(
        "page: qsh for other parameters",
        "/configure",
        "GET",
        f"/configure?lic=active&tz=UTC&jwt={_page(world, a, 'GET', page)}",
        401,
        [],
        None,
        "qsh_mismatch",
    )
    add(
        "page: session token",
        "/configure",
        "GET",
        f"{page}&jwt={session_token(world, a)}",
        401,
        [],
        None,
        "context_token_not_allowed",
    )
    add(
        "page: context JWT",
        "/configure",
        "GET",
        f"{page}&jwt={_page(world, a, 'GET', page, qsh='context-qsh')}",
        401,
        [],
        None,
        "context_token_not_allowed",
    )
    add(
        "page: two jwt parameters",
        "/configure",
        "GET",
        f"{signed(a)}&jwt=x",
        401,
        [],
        None,
        "malformed_token",
    )
    add(
        "page: iss a, signed with b's secret",
        "/configure",
        "GET",
        signed(a, secret=b.secret),
        401,
        [],
        None,
        "bad_signature",
    )
    add(
        "page: aud names b, signed by a",
        "/configure",
        "GET",
        signed(a, extra={"aud": [b.client_key]}),
        401,
        [],
        None,
        "bad_signature",
    )
    add(
        "page: uninstalled tenant",
        "/configure",
        "GET",
        signed(gone),
        401,
        [],
        None,
        "uninstalled_tenant",
    )
    add("page: disabled tenant", "/configure", "GET", signed(off), 403, [], None, "tenant_disabled")
    add("page: garbage token", "/configure", "GET", f"{page}&jwt=abc", 401, [], None)
    add("page: 3 KB garbage token", "/configure", "GET", f"{page}&jwt={'A' * 3000}", 401, [], None)
    add(
        "page: expired",
        "/configure",
        "GET",
        signed(a, now=time.time() - 3600),
        401,
        [],
        None,
        "token_expired",
    )
    crlf = "/configure?lic=none%0d%0aX-Injected:%20yes&tz=UTC"
    add(
        "page: CRLF in a parameter (signed)",
        "/configure",
        "GET",
        signed(a, crlf),
        200,
        [],
        None,
        None,
        _no_header("X-Injected"),
    )
    xss = "<script>alert('resilience')</script>"
    add(
        "page: script in the token's sub",
        "/configure",
        "GET",
        signed(a, sub=xss),
        200,
        [],
        None,
        None,
        _not_in_body(xss),
    )
    add(
        "page: dot-dot path",
        "/configure",
        "GET",
        f"/configure/../installed?jwt={_page(world, a, 'GET', '/installed')}",
        404,
        [],
        None,
    )
    add("page: NUL in the path", "/configure", "GET", "/configure%00?lic=none", 404, [], None)
    add("page: PUT", "/configure", "PUT", page, 405, [JSON], b"{}", "method_not_allowed")
    add("page: TRACE", "/configure", "TRACE", page, 405, [], None, "method_not_allowed")

    # POST /configure (AJAX save) --------------------------------------------------------------
    ep = "/configure"
    sa = session_token(world, a)
    save = _j({"values": {"team_name": "Hijacked"}})

    def post(
        name: str,
        expect: int,
        body: bytes | None,
        code: str | None = None,
        token: str | None = sa,
        ctype: str = "application/json",
    ) -> None:
        headers = [("Content-Type", ctype)] + ([_auth(token)] if token else [])
        add(f"save: {name}", ep, "POST", ep, expect, headers, body, code)

    post("no token", 401, save, "missing_token", token=None)
    post(
        "page token (GET qsh) on POST",
        401,
        save,
        "qsh_mismatch",
        token=_page(world, a, "GET", "/configure"),
    )
    post(
        "session aud a signed with b's secret",
        401,
        save,
        "bad_signature",
        token=session_token(world, a, secret=b.secret),
    )
    post(
        "session aud b signed with a's secret",
        401,
        save,
        "bad_signature",
        token=session_token(world, b, secret=a.secret),
    )
    post(
        "session token without aud",
        401,
        save,
        "missing_claim",
        token=session_token(world, a, aud=None),
    )
    post(
        "context JWT signed with b's secret",
        401,
        save,
        "bad_signature",
        token=_page(world, a, "POST", ep, qsh="context-qsh", secret=b.secret),
    )
    post(
        "expired session",
        401,
        save,
        "token_expired",
        token=session_token(world, a, now=time.time() - 7200),
    )
    post("disabled tenant's session", 403, save, "tenant_disabled", token=session_token(world, off))
    post(
        "uninstalled tenant's session",
        401,
        save,
        "uninstalled_tenant",
        token=session_token(world, gone),
    )
    post(
        "alg none session",
        401,
        save,
        "wrong_algorithm",
        token=none_token({"iss": world.app_key, "aud": [a.client_key]}),
    )
    post("text/plain", 415, save, "unsupported_media_type", ctype="text/plain")
    post(
        "form-encoded",
        415,
        b"values=x",
        "unsupported_media_type",
        ctype="application/x-www-form-urlencoded",
    )
    post("70 KB body", 413, _j({"values": {"team_name": "x" * 70_000}}), "body_too_large")
    post("a JSON array", 400, b"[]", "malformed_body")
    post("not JSON", 400, b"{values", "malformed_body")
    post("10,000 nested objects", 400, b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "malformed_body")
    post("invalid UTF-8", 400, b'{"values": {"team_name": "\xc3\x28"}}', "malformed_body")
    post("unknown top-level key", 400, _j({"values": {}, "admin": True}), "invalid_field")
    post("values not an object", 400, _j({"values": ["team_name"]}), "invalid_field")
    post("no values", 400, _j({"version": 1}), "missing_field")
    post("version as a string", 400, _j({"values": {}, "version": "1"}), "invalid_field")
    post("negative version", 400, _j({"values": {}, "version": -1}), "invalid_field")
    post("version true", 400, _j({"values": {}, "version": True}), "invalid_field")
    post("version 1.5", 400, _j({"values": {}, "version": 1.5}), "invalid_field")
    post("stale version", 409, _j({"values": {"team_name": "Hijacked"}, "version": 0}), "conflict")
    post(
        "huge version", 409, _j({"values": {"team_name": "Hijacked"}, "version": 2**70}), "conflict"
    )
    post("unknown field", 400, _j({"values": {"is_admin": True}}), "invalid_configuration")
    post("__proto__ field", 400, _j({"values": {"__proto__": {"x": 1}}}), "invalid_configuration")
    post(
        "list for a text field", 400, _j({"values": {"team_name": ["a"]}}), "invalid_configuration"
    )
    post(
        "10,000-character text",
        400,
        _j({"values": {"team_name": "x" * 10_000}}),
        "invalid_configuration",
    )
    post("NaN number", 400, b'{"values": {"results_per_page": NaN}}', "invalid_configuration")
    post(
        "Infinity number", 400, b'{"values": {"results_per_page": 1e400}}', "invalid_configuration"
    )
    post("400-digit integer", 400, b'{"values": {"results_per_page": 1' + b"0" * 400 + b"}}")
    post(
        "choice not offered",
        400,
        _j({"values": {"default_priority": "urgent"}}),
        "invalid_configuration",
    )
    post(
        "object for a secret",
        400,
        _j({"values": {"api_token": {"secret": False}}}),
        "invalid_configuration",
    )
    post("NUL in text", 400, _j({"values": {"team_name": "a\x00b"}}), "invalid_configuration")

    # descriptor, /api/settings, health --------------------------------------------------------
    d = "/atlassian-connect.json"
    secrets_a = _not_in_body(a.secret, a.api_token, b.client_key)
    add("descriptor: POST (CSRF refuses it first)", d, "POST", d, 403, [JSON], b"{}")
    add("descriptor: garbage jwt parameter", d, "GET", f"{d}?jwt=abc", 200, [], None)
    add("descriptor: garbage JWT header", d, "GET", d, 200, [_auth("abc.def.ghi")], None)
    s = "/api/settings"
    add("api/settings: no token", s, "GET", s, 401, [], None, "missing_token")
    add(
        "api/settings: page token for another path",
        s,
        "GET",
        f"{s}?jwt={_page(world, a, 'GET', '/configure')}",
        401,
        [],
        None,
        "qsh_mismatch",
    )
    add("api/settings: POST", s, "POST", s, 405, [JSON, _auth(sa)], b"{}")
    add(
        "api/settings: session aud a signed with b's secret",
        s,
        "GET",
        s,
        401,
        [_auth(session_token(world, a, secret=b.secret))],
        None,
        "bad_signature",
    )
    add(
        "api/settings: a's session reads only a, no secret",
        s,
        "GET",
        s,
        200,
        [_auth(sa)],
        None,
        None,
        secrets_a,
    )

    # Forge ------------------------------------------------------------------------------------
    f = "/forge/events"
    event = _j({"eventType": "avi:forge:installed:app", "id": a.installation_id})
    fit_a = world.forge.fit(a.installation_id)
    add("forge events: no token", f, "POST", f, 401, [JSON], event, "missing_token")
    add("forge events: garbage bearer", f, "POST", f, 401, [JSON, _bearer("abc")], event)
    add(
        "forge events: Connect session token",
        f,
        "POST",
        f,
        401,
        [JSON, _auth(sa)],
        event,
        "missing_token",
    )
    add(
        "forge events: wrong audience",
        f,
        "POST",
        f,
        401,
        [
            JSON,
            _bearer(
                world.forge.fit(
                    a.installation_id, overrides={"aud": "ari:cloud:ecosystem::app/evil"}
                )
            ),
        ],
        event,
    )
    add(
        "forge events: unknown kid",
        f,
        "POST",
        f,
        401,
        [JSON, _bearer(world.forge.fit(a.installation_id, kid="evil-kid", key=generate_rsa_key()))],
        event,
    )
    add(
        "forge events: expired",
        f,
        "POST",
        f,
        401,
        [JSON, _bearer(world.forge.fit(a.installation_id, now=time.time() - 3600))],
        event,
    )
    add(
        "forge events: wrong issuer",
        f,
        "POST",
        f,
        401,
        [JSON, _bearer(world.forge.fit(a.installation_id, overrides={"iss": "evil"}))],
        event,
    )
    add(
        "forge events: HS256",
        f,
        "POST",
        f,
        401,
        [JSON, _bearer(resign(fit_a, {"alg": "HS256"}, "x"))],
        event,
    )
    add(
        "forge events: alg none",
        f,
        "POST",
        f,
        401,
        [JSON, _bearer(none_token({"iss": "forge/invocation-token"}))],
        event,
    )
    add(
        "forge events: text/plain",
        f,
        "POST",
        f,
        415,
        [("Content-Type", "text/plain"), _bearer(world.forge.fit(a.installation_id))],
        event,
    )
    add(
        "forge events: not JSON",
        f,
        "POST",
        f,
        400,
        [JSON, _bearer(world.forge.fit(a.installation_id))],
        b"{",
        "malformed_body",
    )
    add(
        "forge events: unknown event type",
        f,
        "POST",
        f,
        204,
        [JSON, _bearer(world.forge.fit(a.installation_id))],
        _j({"eventType": "avi:evil"}),
    )
    add("forge events: GET", f, "GET", f, 405, [], None)
    g = "/forge/settings"
    add("forge settings: no token", g, "GET", g, 401, [], None)
    add("forge settings: Connect session token", g, "GET", g, 401, [_auth(sa)], None)
    add(
        "forge settings: unknown installation",
        g,
        "GET",
        g,
        404,
        [_bearer(world.forge.fit(f"ari:cloud:ecosystem::installation/{uuid.uuid4()}"))],
        None,
        "unknown_installation",
    )
    add(
        "forge settings: wrong audience",
        g,
        "GET",
        g,
        401,
        [
            _bearer(
                world.forge.fit(
                    a.installation_id, overrides={"aud": "ari:cloud:ecosystem::app/evil"}
                )
            )
        ],
        None,
    )
    add(
        "forge settings: a's FIT reads only a, no secret",
        g,
        "GET",
        g,
        200,
        [_bearer(world.forge.fit(a.installation_id))],
        None,
        None,
        secrets_a,
    )
    add(
        "forge settings: POST",
        g,
        "POST",
        g,
        405,
        [_bearer(world.forge.fit(a.installation_id))],
        b"",
    )

    # admin login ------------------------------------------------------------------------------
    login = "/admin/login/"
    cookie, token = csrf
    form = "application/x-www-form-urlencoded"

    def login_body(user: str, password: str, with_token: bool = True) -> bytes:
        fields = {"username": user, "password": password, "next": "/admin/"}
        if with_token:
            fields["csrfmiddlewaretoken"] = token
        return "&".join(f"{k}={quote(v)}" for k, v in fields.items()).encode()

    referer = ("Referer", f"{world.app_url}{login}")
    add(
        "admin: login without CSRF",
        login,
        "POST",
        login,
        403,
        [("Content-Type", form)],
        login_body("resilience-admin", "x", with_token=False),
    )
    add(
        "admin: CSRF token without cookie",
        login,
        "POST",
        login,
        403,
        [("Content-Type", form), referer],
        login_body("resilience-admin", "x"),
    )
    with_cookie = [("Content-Type", form), ("Cookie", f"csrftoken={cookie}"), referer]
    add(
        "admin: wrong password",
        login,
        "POST",
        login,
        200,
        with_cookie,
        login_body("resilience-admin", "wrong"),
        None,
        _not_in_body(world.admin_password),
    )
    add(
        "admin: SQL injection as user name",
        login,
        "POST",
        login,
        200,
        with_cookie,
        login_body("' OR 1=1 --", "' OR '1'='1"),
    )
    add(
        "admin: 100 KB password",
        login,
        "POST",
        login,
        200,
        with_cookie,
        login_body("resilience-admin", "p" * 100_000),
    )
    add(
        "admin: open redirect in next",
        login,
        "GET",
        f"{login}?next=https://evil.example/",
        200,
        [],
        None,
    )
    add("admin: index without login", "/admin/", "GET", "/admin/", 302, [], None)
    add(
        "admin: tenants without login",
        "/admin/",
        "GET",
        "/admin/connect_settings/tenant/",
        302,
        [],
        None,
    )

    # anywhere ---------------------------------------------------------------------------------
    add("any: foreign Host header", "*", "GET", "/health", 400, [("Host", "evil.example")], None)
    add("any: unknown path", "*", "GET", "/wp-admin/setup.php", 404, [], None)
    add("any: 3,000-character path", "*", "GET", "/" + "a/" * 1500, 404, [], None)
    return out


# --- running it ---------------------------------------------------------------------------------

_TRACEBACK = re.compile(rb"Traceback \(most recent call last\)|File \"/")


def fetch_csrf(base_url: str) -> tuple[str, str]:
    """The admin login page's CSRF cookie and form token."""
    response = request(base_url, "GET", "/admin/login/")
    cookie = ""
    for name, value in response.headers:
        if name.lower() == "set-cookie" and value.startswith("csrftoken="):
            cookie = value.split(";", 1)[0].split("=", 1)[1]
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', response.body)
    return cookie, match.group(1).decode() if match else ""


def _problems(attack: Attack, response: Response, secrets: list[str]) -> list[str]:
    problems: list[str] = []
    if response.error:
        return [f"no answer: {response.error}"]
    if response.status != attack.expect:
        detail = response.body[:160].decode("utf-8", "replace")
        problems.append(f"status {response.status}, expected {attack.expect}: {detail}")
    if response.status >= 500:
        problems.append("5xx answer")
    if _TRACEBACK.search(response.body):
        problems.append("traceback in the answer")
    everything = response.body + "".join(f"{k}: {v}\n" for k, v in response.headers).encode()
    for secret in secrets:
        if secret.encode() in everything:
            problems.append(f"a secret in the answer ({secret[:6]}...)")
    if attack.code is not None:
        data = response.json()
        code = data.get("error") if isinstance(data, dict) else None
        if code != attack.code:
            problems.append(f"error code {code!r}, expected {attack.code!r}")
    if attack.check is not None and (message := attack.check(response)):
        problems.append(message)
    return problems


def run_catalogue(world: World, result: SuiteResult) -> None:
    """Send every attack; record status, answer and unchanged-table checks."""
    attacks = catalogue(world, fetch_csrf(world.app_url))
    statuses = result.check("hostile: expected status, clean answer")
    unchanged = result.check("hostile: no stored row changed")
    endpoints: set[str] = set()
    secrets = world.secrets()
    first = before = table_checksums()
    # One connection per attack: an answer sent before a huge body was read closes it.
    for attack in attacks:
        endpoints.add(attack.endpoint)
        response = request(
            world.app_url, attack.method, attack.target, attack.headers, attack.body, 30
        )
        problems = _problems(attack, response, secrets)
        statuses.record(not problems, f"{attack.name}: {'; '.join(problems)}")
        after = table_checksums()
        changed = _changed(before, after)
        unchanged.record(not changed, f"{attack.name}: changed {', '.join(changed)}")
        before = after
    statuses.figures.update(attacks=len(attacks), endpoints=len(endpoints))
    unchanged.figures.update(tables=len(first), changed_overall=len(_changed(first, before)))


def run(short: bool) -> SuiteResult:
    """The catalogue and the fuzzing against gunicorn + PostgreSQL."""
    from .fuzz import fuzz_bodies, fuzz_canonical
    from .stack import Stack
    from .world import build_world, seed

    result = SuiteResult("hostile", short)
    with Stack("hostile", emulators=0, gunicorn_workers=2, gunicorn_threads=4) as stack:
        world = build_world(stack.url, stack.key_server)
        seed(world)
        run_catalogue(world, result)
        fuzz_canonical(result, 200 if short else 3000)
        fuzz_bodies(world, result, 30 if short else 400)
    return result
