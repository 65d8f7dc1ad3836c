"""Micro-benchmarks of the hot path, beside the floor of the same work done by hand.

The floor is one SHA-256 of the canonical request (what the qsh needs) and one HMAC-SHA256 of
the token's signing input (what the signature needs): no implementation can do less.
Run through ``bench/run.py micro`` (PostgreSQL + Redis, as production) or directly:
``pytest bench/micro --ds=bench.settings``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory

from bench import harness
from bench.harness import Req
from bench.inprocess import Caller
from connect_settings import auth, store
from connect_settings.jwt import hs256, tokens
from connect_settings.jwt.canonical import canonical_request, query_string_hash
from connect_settings.tenants import get_tenant
from connect_settings.testing import make_tenant

TENANT = harness.make_tenants(1)[0]
PATH = "/configure"
TTL = 3600


@pytest.fixture
def tenant(transactional_db: Any, settings: Any) -> Any:
    settings.ROOT_URLCONF = "bench.micro.urls"
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "APP_KEY": harness.APP_KEY}
    t = make_tenant(TENANT.client_key, TENANT.secret)
    store.set("appSettings", {"team_name": "Support", "results_per_page": 25}, t.client_key)
    get_tenant(t.client_key)  # warm the shared cache
    return t


@pytest.fixture
def page_token() -> str:
    return harness.page_path(TENANT, TTL).rsplit("jwt=", 1)[1]


@pytest.fixture
def session_token() -> str:
    return harness.session_token(TENANT, TTL)


# --- the floor ---------------------------------------------------------------------------------


def test_floor_sha256(benchmark: Any) -> None:
    canonical = canonical_request("GET", PATH, harness.PAGE_QUERY).encode()
    benchmark.group = "floor"
    benchmark(lambda: hashlib.sha256(canonical).hexdigest())


def test_floor_hmac_sha256(benchmark: Any, page_token: str) -> None:
    signing_input = page_token.rsplit(".", 1)[0].encode()
    key = TENANT.secret.encode()
    benchmark.group = "floor"
    benchmark(lambda: hmac.new(key, signing_input, hashlib.sha256).digest())


def test_floor_hmac_plus_sha256(benchmark: Any, page_token: str) -> None:
    canonical = canonical_request("GET", PATH, harness.PAGE_QUERY).encode()
    signing_input = page_token.rsplit(".", 1)[0].encode()
    key = TENANT.secret.encode()

    def floor() -> None:
        hmac.new(key, signing_input, hashlib.sha256).digest()
        hashlib.sha256(canonical).hexdigest()

    benchmark.group = "floor"
    benchmark(floor)


# --- pure token work ---------------------------------------------------------------------------


def test_canonical_request_and_qsh(benchmark: Any) -> None:
    benchmark.group = "jwt"
    benchmark(query_string_hash, "GET", PATH, harness.PAGE_QUERY)


def test_request_qsh_matches(benchmark: Any, page_token: str, settings: Any) -> None:
    full = f"{PATH}?{harness.PAGE_QUERY}&jwt={page_token}"
    request = RequestFactory().get(full, RAW_URI=full)
    qsh = tokens.read_unverified(page_token)[1]["qsh"]
    benchmark.group = "jwt"
    assert benchmark(auth.request_qsh_matches, request, qsh)


def test_verify_page_token(benchmark: Any, page_token: str) -> None:
    # As auth.verify_token does: parse once, then verify the parsed token.
    benchmark.group = "jwt"
    benchmark(lambda: hs256.verify(hs256.parse(page_token), TENANT.secret))


def test_verify_session_token(benchmark: Any, session_token: str) -> None:
    benchmark.group = "jwt"
    benchmark(lambda: hs256.verify(hs256.parse(session_token), TENANT.secret))


def test_authenticate_session_token(benchmark: Any, tenant: Any, session_token: str) -> None:
    """All of the authentication work of a W4 request outside Django's handler: find the
    token, parse it, look the tenant up, verify, build request.connect, mint the X-acpt token.
    The same token every call: after the first, verified from the memo (no base64, no HMAC)."""
    request = RequestFactory().get("/api/settings", HTTP_AUTHORIZATION=f"JWT {session_token}")

    def authenticate() -> str:
        return auth.authenticate_request(request).session_token

    benchmark.group = "jwt"
    assert benchmark(authenticate)


def test_authenticate_session_token_new(benchmark: Any, tenant: Any) -> None:
    """The same with a session token never seen before on every call (a first use: parse,
    HMAC and all), from a pool larger than the memo of verified tokens."""
    pool = [
        RequestFactory().get("/api/settings", HTTP_AUTHORIZATION=f"JWT {token}")
        for token in harness.session_tokens(TENANT, 3 * TTL, 2 * auth._VERIFIED_SIZE + 1)
    ]
    requests = itertools.cycle(pool)

    def authenticate() -> str:
        return auth.authenticate_request(next(requests)).session_token

    benchmark.group = "jwt"
    assert benchmark(authenticate)


def test_mint_session_token(benchmark: Any, tenant: Any) -> None:
    """Within one second: the second and later mints for the same user come from the memo."""
    cached = get_tenant(tenant.client_key)
    benchmark.group = "jwt"
    benchmark(auth.mint_session_token, cached, "557058:bench-user", {})


def test_mint_session_token_fresh(benchmark: Any, tenant: Any) -> None:
    """A new second for every call: every call mints (what a first request pays)."""
    cached = get_tenant(tenant.client_key)
    seconds = itertools.count(1_800_000_000)
    benchmark.group = "jwt"
    benchmark(lambda: auth.mint_session_token(cached, "557058:bench-user", {}, now=next(seconds)))


# --- tenants and the store ---------------------------------------------------------------------


def test_tenant_lookup_cached(benchmark: Any, tenant: Any) -> None:
    benchmark.group = "tenant"
    assert benchmark(get_tenant, tenant.client_key) is not None


def test_tenant_lookup_uncached(benchmark: Any, tenant: Any) -> None:
    benchmark.group = "tenant"
    assert benchmark(lambda: get_tenant(tenant.client_key, fresh=True)) is not None


def test_store_get(benchmark: Any, tenant: Any) -> None:
    benchmark.group = "store"
    assert benchmark(store.get, "appSettings", tenant.client_key) is not None


def test_store_set(benchmark: Any, tenant: Any) -> None:
    counter = itertools.count()
    benchmark.group = "store"
    # A new value each time: every call is a real, committed write.
    benchmark(lambda: store.set("counter", next(counter), tenant.client_key))


def test_store_all(benchmark: Any, tenant: Any) -> None:
    benchmark.group = "store"
    assert benchmark(store.all, tenant.client_key)


# --- whole requests through Django's handler (a warm worker, no socket) -----------------------


@pytest.fixture
def call(tenant: Any) -> Caller:
    caller = Caller(WSGIHandler())
    return caller


def _bench_request(benchmark: Any, call: Caller, req: Req) -> None:
    for _ in range(50):  # warm: connection, templates, caches
        call(req)
    benchmark.group = "request"
    benchmark(call, req)


def test_request_empty_unauthenticated(benchmark: Any, call: Caller) -> None:
    _bench_request(benchmark, call, Req("GET", "/bench/empty"))


def test_request_empty_session_token(benchmark: Any, call: Caller, session_token: str) -> None:
    _bench_request(benchmark, call, Req("GET", "/bench/session", f"JWT {session_token}"))


def test_request_empty_page_token(benchmark: Any, call: Caller) -> None:
    _bench_request(benchmark, call, Req("GET", harness.page_path(TENANT, TTL, "/bench/page")))


def test_request_health(benchmark: Any, call: Caller) -> None:
    _bench_request(benchmark, call, Req("GET", "/health"))


def test_request_w4_settings(benchmark: Any, call: Caller, session_token: str) -> None:
    _bench_request(benchmark, call, Req("GET", "/api/settings", f"JWT {session_token}"))


# --- authentication overhead, interleaved ------------------------------------------------------


def test_auth_overhead_interleaved(call: Caller, session_token: str) -> None:
    """What authentication adds to an empty view, in alternating batches of 40 requests, so
    that the machine's drift hits every kind alike (pytest-benchmark times each benchmark on
    its own, seconds apart, and the difference of two of them is mostly noise). Kinds: a
    session token sent again (a page's burst of calls, within the second its X-acpt lives), a
    new session token on every request (a first use: full verification), and a page token.
    Writes ``BENCH_OVERHEAD_OUT`` (JSON) when set; ``bench/run.py micro`` reports it."""
    batch, rounds = 40, 150
    fresh = iter(harness.session_tokens(TENANT, 3 * rounds * batch, (rounds + 10) * batch))
    kinds = {
        "unauthenticated": lambda: Req("GET", "/bench/empty"),
        "session_repeated": lambda: Req("GET", "/bench/session", f"JWT {session_token}"),
        "session_new": lambda: Req("GET", "/bench/session", f"JWT {next(fresh)}"),
        "page": lambda: Req("GET", harness.page_path(TENANT, TTL, "/bench/page")),
    }
    page = kinds["page"]()
    kinds["page"] = lambda: page  # one page token (page tokens are never kept: no memo)
    for _ in range(5):
        for make in kinds.values():
            for _ in range(batch):
                call(make())
    times: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(rounds):
        for name, make in kinds.items():
            reqs = [make() for _ in range(batch)]  # built outside the timed loop
            start = time.perf_counter()
            for req in reqs:
                call(req)
            times[name].append((time.perf_counter() - start) / batch * 1e6)
    base = times["unauthenticated"]
    result = {
        name: {
            "median_us": statistics.median(t),
            "overhead_median_us": statistics.median(a - b for a, b in zip(t, base, strict=True)),
        }
        for name, t in times.items()
    }
    for name, r in result.items():
        print(f"{name}: {r['median_us']:.1f} µs, +{r['overhead_median_us']:.1f} µs")
    assert result["session_new"]["overhead_median_us"] > 0
    out = os.environ.get("BENCH_OVERHEAD_OUT")
    if out:
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
