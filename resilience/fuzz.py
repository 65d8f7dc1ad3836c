"""Property-based fuzzing (hypothesis): the canonical request code, and JSON bodies on every
POST endpoint sent with valid credentials, so parsing and validation are reached. No 5xx,
ever; every refusal is a JSON ``{"error": ...}`` answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .rawhttp import Connection
from .report import SuiteResult
from .world import World, session_token

__all__ = ["fuzz_bodies", "fuzz_canonical"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _hypothesis(examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,  # repeatable: no example database carried between runs
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )


def fuzz_canonical(result: SuiteResult, examples: int) -> None:
    """Properties of :mod:`connect_settings.jwt.canonical` on arbitrary input."""
    from connect_settings.jwt.canonical import (
        canonical_query,
        canonical_request,
        query_string_hash,
        query_string_hash_from_url,
    )

    check = result.check("fuzz: canonical request (no exception, invariants)")
    names = st.text(min_size=1, max_size=8).filter(lambda n: n != "jwt")
    pairs = st.lists(st.tuples(names, st.text(max_size=12)), max_size=6)

    @_hypothesis(examples)
    @given(
        method=st.text(max_size=8),
        path=st.text(max_size=40),
        query=st.text(max_size=60),
        base=st.text(max_size=12),
        url=st.text(max_size=80),
    )
    def arbitrary_text(method: str, path: str, query: str, base: str, url: str) -> None:
        qsh = query_string_hash(method, path, query, base)
        assert len(qsh) == 64 and set(qsh) <= set("0123456789abcdef")
        canonical_request(method, path, query, base)
        query_string_hash_from_url(method, url, base)

    @_hypothesis(examples)
    @given(pairs=pairs, token=st.text(max_size=30), data=st.data())
    def order_and_jwt_do_not_matter(pairs: list[tuple[str, str]], token: str, data: Any) -> None:
        query = urlencode(pairs)
        shuffled = urlencode(data.draw(st.permutations(pairs)))
        with_jwt = urlencode([*pairs, ("jwt", token)])
        expected = canonical_query(query)
        assert canonical_query(shuffled) == expected
        assert canonical_query(with_jwt) == expected

    for prop in (arbitrary_text, order_and_jwt_do_not_matter):
        try:
            prop()
            check.record(True)
        except Exception as err:  # a falsified property: reported with its example
            check.record(False, f"{prop.__name__}: {type(err).__name__}: {str(err)[:300]}")
    check.figures["examples"] = examples * 2


def fuzz_bodies(world: World, result: SuiteResult, examples: int) -> None:
    """Arbitrary JSON (and bytes) with valid credentials on every POST endpoint, and arbitrary
    query parameters on signed page loads."""
    from connect_settings.testing import page_token

    # Page loads and saves as a; lifecycle events (which may disable) on b.
    a, b = world["a"], world["b"]
    conn = Connection(world.app_url, timeout=30)
    check = result.check("fuzz: JSON bodies and signed queries (no 5xx)")
    statuses: dict[int, int] = {}
    fields = ["team_name", "default_priority", "notify", "results_per_page", "channels",
              "project_keys", "api_token", "unknown"]  # fmt: skip

    def send(name: str, path: str, headers: list[tuple[str, str]], body: bytes) -> None:
        response = conn.request(
            "POST", path, [("Content-Type", "application/json"), *headers], body
        )
        statuses[response.status] = statuses.get(response.status, 0) + 1
        ok = 0 < response.status < 500
        if ok and response.status >= 400:
            data = response.json()
            ok = isinstance(data, dict) and isinstance(data.get("error"), str)
        assert ok, f"{name}: {response.status} {response.error} {response.body[:200]!r}"

    def encoded(value: Any) -> bytes:
        return json.dumps(value).encode()

    fuzz_key = f"resilience-fuzz-{int(time.time())}"

    def install_headers(path: str) -> list[tuple[str, str]]:
        return [("Authorization", f"JWT {world.installer.token(fuzz_key, path)}")]

    def lifecycle_headers(path: str) -> list[tuple[str, str]]:
        token = page_token(b.client_key, b.secret, "POST", path, base_path="")
        return [("Authorization", f"JWT {token}")]

    base_payload = {
        "key": world.app_key,
        "clientKey": fuzz_key,
        "sharedSecret": "fuzz-secret-0123456789-0123456789-0123456789",
        "baseUrl": "http://127.0.0.1:9/fuzz",
        "productType": "jira",
    }
    install_bodies = st.fixed_dictionaries(
        {k: st.one_of(st.just(v), json_values) for k, v in base_payload.items()},
        optional={"displayUrl": json_values, "description": json_values, "extra": json_values},
    )
    configure_bodies = st.fixed_dictionaries(
        {"values": st.dictionaries(st.sampled_from(fields), json_values, max_size=5)},
        optional={"version": json_values},
    )

    @_hypothesis(examples)
    @given(body=install_bodies, raw=st.binary(max_size=300), use_raw=st.booleans())
    def installed(body: dict[str, Any], raw: bytes, use_raw: bool) -> None:
        send(
            "installed",
            "/installed",
            install_headers("/installed"),
            raw if use_raw else encoded(body),
        )

    @_hypothesis(examples)
    @given(body=json_values)
    def uninstalled(body: Any) -> None:
        send("uninstalled", "/uninstalled", install_headers("/uninstalled"), encoded(body))

    @_hypothesis(examples)
    @given(body=json_values, path=st.sampled_from(["/enabled", "/disabled"]))
    def enabled_disabled(body: Any, path: str) -> None:
        send(path, path, lifecycle_headers(path), encoded(body))

    @_hypothesis(examples)
    @given(body=configure_bodies | json_values)
    def configure(body: Any) -> None:
        headers = [("Authorization", f"JWT {session_token(world, a)}")]
        send("configure", "/configure", headers, encoded(body))

    @_hypothesis(examples)
    @given(body=json_values)
    def forge_events(body: Any) -> None:
        headers = [("Authorization", f"Bearer {world.forge.fit(a.installation_id)}")]
        send("forge/events", "/forge/events", headers, encoded(body))

    @_hypothesis(examples)
    @given(params=st.lists(st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=12)),
                           max_size=5))  # fmt: skip
    def signed_page_query(params: list[tuple[str, str]]) -> None:
        # Whatever the parameters, a page token signed for the URL verifies (the app's
        # canonical request equals the signer's) unless a parameter is named jwt.
        url = "/configure?" + urlencode(params) if params else "/configure"
        token = page_token(a.client_key, a.secret, "GET", url, base_path="")
        target = f"{url}{'&' if params else '?'}jwt={token}"
        response = conn.request("GET", target)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        has_jwt = any(name == "jwt" for name, _ in params)
        assert response.status == (401 if has_jwt else 200), (
            f"page {target[:120]!r}: {response.status} {response.body[:160]!r}"
        )

    props = [installed, uninstalled, enabled_disabled, configure, forge_events, signed_page_query]
    try:
        for prop in props:
            try:
                prop()
                check.record(True)
            except Exception as err:
                check.record(False, f"{prop.__name__}: {type(err).__name__}: {str(err)[:400]}")
    finally:
        conn.close()
    check.figures["requests"] = sum(statuses.values())
    check.figures["statuses"] = dict(sorted(statuses.items()))
