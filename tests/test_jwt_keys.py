"""InstallKeyFetcher against real HTTP key servers on 127.0.0.1 (connect_settings.testing)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from connect_settings.jwt.errors import KeyUnavailable, TokenError
from connect_settings.jwt.keys import InstallKeyFetcher, check_kid
from connect_settings.jwt.tokens import mint_rs256, verify_rs256
from connect_settings.testing import KeyServer, generate_rsa_key

KID = "prod/install-key-1"


@pytest.fixture
def second_key_server() -> Iterator[KeyServer]:
    server = KeyServer().start()
    try:
        yield server
    finally:
        server.stop()


def closed_port_url() -> str:
    """The URL of a port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def same_key(a: RSAPublicKey, b: RSAPublicKey) -> bool:
    return a.public_numbers() == b.public_numbers()


def test_fetch_ok_and_cached(connect_key_server: KeyServer) -> None:
    private = connect_key_server.add_key(KID)
    fetcher = InstallKeyFetcher([connect_key_server.url], timeout=5)

    key = fetcher.get(KID)
    assert same_key(key, private.public_key())
    assert connect_key_server.requests == 1

    assert fetcher.get(KID) is key
    assert connect_key_server.requests == 1, "a cached key is not fetched again"

    # The fetched key verifies what its private half signed.
    token = mint_rs256({"iss": "c", "aud": ["https://app"]}, private, kid=KID)
    assert verify_rs256(token, key, audience=["https://app"])["iss"] == "c"


def test_cache_is_per_kid(connect_key_server: KeyServer) -> None:
    first = connect_key_server.add_key("kid-a")
    second = connect_key_server.add_key("kid-b")
    fetcher = InstallKeyFetcher([connect_key_server.url])
    assert same_key(fetcher.get("kid-a"), first.public_key())
    assert same_key(fetcher.get("kid-b"), second.public_key())
    assert not same_key(fetcher.get("kid-a"), fetcher.get("kid-b"))
    assert connect_key_server.requests == 2


def test_cache_is_bounded(connect_key_server: KeyServer) -> None:
    for kid in ("k1", "k2", "k3"):
        connect_key_server.add_key(kid)
    fetcher = InstallKeyFetcher([connect_key_server.url], max_cached=2)
    fetcher.get("k1")
    fetcher.get("k2")
    fetcher.get("k1")  # most recently used now
    fetcher.get("k3")  # evicts k2
    assert connect_key_server.requests == 3
    fetcher.get("k1")
    assert connect_key_server.requests == 3
    fetcher.get("k2")
    assert connect_key_server.requests == 4


def test_clear_empties_the_cache(connect_key_server: KeyServer) -> None:
    connect_key_server.add_key(KID)
    fetcher = InstallKeyFetcher([connect_key_server.url])
    fetcher.get(KID)
    fetcher.clear()
    fetcher.get(KID)
    assert connect_key_server.requests == 2


def test_server_url_with_trailing_slash(connect_key_server: KeyServer) -> None:
    connect_key_server.add_key(KID)
    fetcher = InstallKeyFetcher([connect_key_server.url + "/"])
    assert isinstance(fetcher.get(KID), RSAPublicKey)


BAD_KIDS: dict[str, object] = {
    "dot-dot": "../x",
    "dot-dot-inside": "a/../b",
    "encoded-dot-dot": "%2e%2e",
    "encoded-slash": "a%2Fb",
    "double-slash": "a//b",
    "leading-slash": "/a",
    "trailing-slash": "a/",
    "empty": "",
    "none": None,
    "int": 123,
    "bytes": b"kid",
    "too-long": "k" * 300,
    "backslash": "a\\b",
    "question-mark": "a?b",
    "hash": "a#b",
    "dot": "a.b",
    "space": "a b",
    "newline": "a\n",
    "url": "http://evil.example/key",
    "non-ascii": "clé",
}


@pytest.mark.parametrize("kid", BAD_KIDS.values(), ids=BAD_KIDS.keys())
def test_bad_kid_shapes_are_rejected_without_a_request(
    connect_key_server: KeyServer, kid: object
) -> None:
    connect_key_server.add_key("x")
    connect_key_server.add_key("a/b")
    fetcher = InstallKeyFetcher([connect_key_server.url])
    with pytest.raises(TokenError) as info:
        fetcher.get(kid)  # type: ignore[arg-type]
    assert info.value.code == "invalid_kid"
    assert info.value.status == 401
    assert not isinstance(info.value, KeyUnavailable)
    assert connect_key_server.requests == 0


@pytest.mark.parametrize("kid", ["a", "prod/abc-123_X", "a/b/c", "k" * 256])
def test_good_kid_shapes(kid: str) -> None:
    assert check_kid(kid) == kid


def test_servers_are_tried_in_order(
    connect_key_server: KeyServer, second_key_server: KeyServer
) -> None:
    private = second_key_server.add_key(KID)
    connect_key_server.mode = "down"
    fetcher = InstallKeyFetcher([connect_key_server.url, second_key_server.url])
    assert same_key(fetcher.get(KID), private.public_key())
    assert connect_key_server.requests == 1
    assert second_key_server.requests == 1


def test_first_server_answering_wins(
    connect_key_server: KeyServer, second_key_server: KeyServer
) -> None:
    first = connect_key_server.add_key(KID)
    second_key_server.add_key(KID)
    fetcher = InstallKeyFetcher([connect_key_server.url, second_key_server.url])
    assert same_key(fetcher.get(KID), first.public_key())
    assert second_key_server.requests == 0


def test_not_found_on_first_falls_through_to_second(
    connect_key_server: KeyServer, second_key_server: KeyServer
) -> None:
    private = second_key_server.add_key(KID)
    fetcher = InstallKeyFetcher([connect_key_server.url, second_key_server.url])
    assert same_key(fetcher.get(KID), private.public_key())
    assert (connect_key_server.requests, second_key_server.requests) == (1, 1)


def test_all_servers_down(connect_key_server: KeyServer, second_key_server: KeyServer) -> None:
    connect_key_server.add_key(KID)
    connect_key_server.mode = "down"
    second_key_server.mode = "down"
    fetcher = InstallKeyFetcher([connect_key_server.url, second_key_server.url])
    with pytest.raises(KeyUnavailable) as info:
        fetcher.get(KID)
    assert info.value.status == 503
    assert info.value.code == "install_key_unavailable"
    assert (connect_key_server.requests, second_key_server.requests) == (1, 1)


def test_unknown_kid_on_all_servers(
    connect_key_server: KeyServer, second_key_server: KeyServer
) -> None:
    connect_key_server.add_key("another-kid")
    fetcher = InstallKeyFetcher([connect_key_server.url, second_key_server.url])
    with pytest.raises(TokenError) as info:
        fetcher.get(KID)
    assert not isinstance(info.value, KeyUnavailable)
    assert info.value.code == "unknown_kid"
    assert info.value.status == 401
    assert (connect_key_server.requests, second_key_server.requests) == (1, 1)


def test_unknown_on_one_and_down_on_the_other_is_unavailable(
    connect_key_server: KeyServer, second_key_server: KeyServer
) -> None:
    # The server that is down might know the key: the caller should retry, not fail for good.
    second_key_server.mode = "down"
    fetcher = InstallKeyFetcher([connect_key_server.url, second_key_server.url])
    with pytest.raises(KeyUnavailable):
        fetcher.get(KID)


def test_garbage_is_unknown_kid_not_cached_and_recovers(connect_key_server: KeyServer) -> None:
    private = connect_key_server.add_key(KID)
    connect_key_server.mode = "garbage"
    fetcher = InstallKeyFetcher([connect_key_server.url])
    with pytest.raises(TokenError) as info:
        fetcher.get(KID)
    assert info.value.code == "unknown_kid"
    with pytest.raises(TokenError):
        fetcher.get(KID)
    assert connect_key_server.requests == 2, "a failure is not cached"

    connect_key_server.mode = "ok"
    assert same_key(fetcher.get(KID), private.public_key())
    fetcher.get(KID)
    assert connect_key_server.requests == 3


def test_slow_server_times_out_quickly(connect_key_server: KeyServer) -> None:
    connect_key_server.add_key(KID)
    connect_key_server.mode = "slow"
    connect_key_server.delay = 30
    fetcher = InstallKeyFetcher([connect_key_server.url], timeout=0.3)
    started = time.monotonic()
    with pytest.raises(KeyUnavailable):
        fetcher.get(KID)
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"took {elapsed:.1f} s despite a 0.3 s timeout"
    assert connect_key_server.requests == 1


def test_slow_first_server_then_a_good_one(
    connect_key_server: KeyServer, second_key_server: KeyServer
) -> None:
    connect_key_server.mode = "slow"
    connect_key_server.delay = 30
    private = second_key_server.add_key(KID)
    fetcher = InstallKeyFetcher([connect_key_server.url, second_key_server.url], timeout=0.3)
    started = time.monotonic()
    assert same_key(fetcher.get(KID), private.public_key())
    assert time.monotonic() - started < 5


def test_refused_connection_is_unavailable() -> None:
    fetcher = InstallKeyFetcher([closed_port_url()], timeout=2)
    with pytest.raises(KeyUnavailable) as info:
        fetcher.get(KID)
    assert info.value.status == 503


def test_refused_connection_then_a_good_server(connect_key_server: KeyServer) -> None:
    private = connect_key_server.add_key(KID)
    fetcher = InstallKeyFetcher([closed_port_url(), connect_key_server.url], timeout=2)
    assert same_key(fetcher.get(KID), private.public_key())


def test_unavailability_is_not_cached(connect_key_server: KeyServer) -> None:
    private = connect_key_server.add_key(KID)
    connect_key_server.mode = "down"
    fetcher = InstallKeyFetcher([connect_key_server.url])
    with pytest.raises(KeyUnavailable):
        fetcher.get(KID)
    connect_key_server.mode = "ok"
    assert same_key(fetcher.get(KID), private.public_key())
    assert connect_key_server.requests == 2


def test_unknown_kid_is_not_cached(connect_key_server: KeyServer) -> None:
    fetcher = InstallKeyFetcher([connect_key_server.url])
    with pytest.raises(TokenError):
        fetcher.get(KID)
    private = connect_key_server.add_key(KID)
    assert same_key(fetcher.get(KID), private.public_key())
    assert connect_key_server.requests == 2


def test_a_new_key_pair_for_the_same_kid_is_not_picked_up(connect_key_server: KeyServer) -> None:
    # Keys are immutable per kid (PROTOCOL.md section 3): the cache holds the first one.
    first = connect_key_server.add_key(KID)
    fetcher = InstallKeyFetcher([connect_key_server.url])
    fetcher.get(KID)
    connect_key_server.add_key(KID, generate_rsa_key())
    assert same_key(fetcher.get(KID), first.public_key())
