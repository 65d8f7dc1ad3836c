"""Broken input gets a clean JSON answer from the emulator, never a traceback or a hang."""

from __future__ import annotations

import json
import socket

import pytest
import requests

from connect_settings.host import Emulator
from tests.host_support import APP_KEY, assert_error, call, prop_url

pytest_plugins = ["tests.host_fixtures"]


def raw_request(emu: Emulator, data: bytes) -> bytes:
    """Send raw bytes and read the whole answer (the server closes after an error)."""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        for _ in range(1000):  # bounded: an answer is far smaller than 1000 reads
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_and_body(answer: bytes) -> tuple[int, dict[str, object]]:
    if answer.startswith(b"{"):
        # A request line without a version is HTTP/0.9, whose answers carry no status line.
        body = json.loads(answer)
        return int(body["statusCode"]), body
    head, _, raw = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(raw)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n", 505),
        (b"BREW / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"PUT /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n", 400),
        (b"PUT /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n", 400),
        (
            b"PUT /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999\r\n\r\n",
            413,
        ),
        (b"PUT /x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
    ],
    ids=[
        "garbage",
        "no-path",
        "bad-version",
        "unknown-method",
        "huge-request-line",
        "bad-length",
        "negative-length",
        "huge-length",
        "chunked",
    ],
)
def test_malformed_requests_get_json_errors(host_site: Emulator, data: bytes, status: int) -> None:
    answer = raw_request(host_site, data)
    got, body = status_and_body(answer)
    assert got == status
    assert body["statusCode"] == status
    assert b"Traceback" not in answer
    # And the emulator is still serving.
    assert requests.get(f"{host_site.url}/_emulator", timeout=10).ok


def test_a_foreign_host_header_is_refused(host_site: Emulator) -> None:
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not drive the emulator.
    for path in ("/", "/_emulator/apps", "/keys/x"):
        response = requests.get(
            f"{host_site.url}{path}", headers={"Host": "evil.example"}, timeout=10
        )
        assert_error(response, 421)
    assert requests.get(
        f"{host_site.url}/", headers={"Host": f"localhost:{host_site.port}"}, timeout=10
    ).ok


@pytest.mark.parametrize(
    "path",
    [
        "/nothing",
        "/_emulator/nothing",
        "/_emulator/apps/x/y/z",
        "/_emulator/apps/%ff%fe/properties",
        "/keys/../../etc/passwd",
        "/rest/atlassian-connect/1/addons/%zz/properties",
        "/%",
        "//double//slashes",
    ],
)
def test_odd_paths_are_404_json(host_site: Emulator, path: str) -> None:
    response = requests.get(host_site.url + path, timeout=10)
    assert response.status_code in (401, 404)
    body = response.json()
    assert set(body) == {"message", "statusCode"}


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'{"url": 5}', b'{"url": ""}', b"\xff", b'{"url": "not a url"}'],
)
def test_broken_install_requests_are_400(host_site: Emulator, body: bytes) -> None:
    response = requests.post(
        f"{host_site.url}/_emulator/apps",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400


def test_install_of_a_non_http_url_is_400(host_site: Emulator) -> None:
    response = requests.post(
        f"{host_site.url}/_emulator/apps", json={"url": "file:///etc/passwd"}, timeout=10
    )
    assert response.status_code == 400
    assert "not an absolute http(s) URL" in response.json()["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/"),
        ("POST", "/keys/x"),
        ("PUT", "/_emulator/apps"),
        ("GET", f"/_emulator/apps/{APP_KEY}/uninstall"),
    ],
)
def test_wrong_methods_are_405_or_404(host_installed: Emulator, method: str, path: str) -> None:
    response = requests.request(
        method, host_installed.url + path, json={}, headers={"Host": "127.0.0.1"}, timeout=10
    )
    assert response.status_code in (404, 405)
    assert response.json()["statusCode"] == response.status_code
    assert host_installed.installation().enabled


def test_a_body_larger_than_the_limit_is_413(host_installed: Emulator) -> None:
    response = requests.put(
        prop_url(host_installed, "big"),
        data=b"x" * (1024 * 1024 + 1),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert_error(response, 413)


def test_deeply_nested_json_is_refused_cleanly(host_installed: Emulator) -> None:
    response = call(host_installed, "PUT", "deep", "[" * 20000 + "]" * 20000)
    assert response.status_code == 400


def test_keep_alive_connections_serve_many_requests(host_site: Emulator) -> None:
    with requests.Session() as session:
        for _ in range(20):
            assert session.get(f"{host_site.url}/_emulator", timeout=10).ok
