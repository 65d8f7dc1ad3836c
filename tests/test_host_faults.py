"""Faults on demand behave exactly as configured, through the Python API and the HTTP API."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import requests

from connect_settings.host import Emulator, Fault, InstallError
from tests.host_support import FakeApp, assert_error, call, prop_url

pytest_plugins = ["tests.host_fixtures"]


def test_429_for_the_next_n_calls_with_retry_after_then_normal(host_installed: Emulator) -> None:
    host_installed.add_fault(429, count=2, retry_after=7)
    for _ in range(2):
        response = call(host_installed, "GET")
        assert_error(response, 429)
        assert response.headers["Retry-After"] == "7"
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert response.headers["X-RateLimit-NearLimit"] == "true"
        reset = datetime.strptime(response.headers["X-RateLimit-Reset"], "%Y-%m-%dT%H:%M:%SZ")
        assert reset.replace(tzinfo=UTC) > datetime.now(UTC)
    assert call(host_installed, "GET").status_code == 200
    assert host_installed.faults.applied == 2
    assert host_installed.faults.active() == []


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(host_installed: Emulator, status: int) -> None:
    host_installed.add_fault(status, retry_after=1 if status == 503 else None)
    response = call(host_installed, "PUT", "k", "1")
    assert_error(response, status)
    assert ("Retry-After" in response.headers) is (status == 503)
    # The faulted PUT never reached the API: nothing was stored.
    assert host_installed.properties() == {}
    assert call(host_installed, "PUT", "k", "1").status_code == 201


def test_faults_are_consumed_in_order(host_installed: Emulator) -> None:
    host_installed.add_fault(503)
    host_installed.add_fault(429, count=2)
    statuses = [call(host_installed, "GET").status_code for _ in range(4)]
    assert statuses == [503, 429, 429, 200]


def test_dropped_connections(host_installed: Emulator) -> None:
    host_installed.add_fault(drop=True, count=2)
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            call(host_installed, "GET")
    assert call(host_installed, "GET").status_code == 200


def test_delayed_answers_are_otherwise_normal(host_installed: Emulator) -> None:
    host_installed.add_fault(delay=0.3)
    started = time.monotonic()
    response = call(host_installed, "GET")
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200


def test_a_delay_longer_than_the_client_timeout_times_it_out(host_installed: Emulator) -> None:
    host_installed.add_fault(delay=5)
    with pytest.raises(requests.Timeout):
        requests.get(prop_url(host_installed), timeout=0.3)
    # stop() releases the held answer at once (the teardown would otherwise wait 5 s).


def test_delay_then_status(host_installed: Emulator) -> None:
    host_installed.add_fault(503, delay=0.2)
    started = time.monotonic()
    assert_error(call(host_installed, "GET"), 503)
    assert time.monotonic() - started >= 0.2


def test_method_and_path_filters(host_installed: Emulator) -> None:
    host_installed.add_fault(500, method="PUT")
    assert call(host_installed, "GET").status_code == 200
    assert_error(call(host_installed, "PUT", "k", "1"), 500)
    host_installed.add_fault(500, path="/keys/")
    assert call(host_installed, "GET").status_code == 200
    key = requests.get(f"{host_installed.key_server_url}/{host_installed.kid}", timeout=10)
    assert key.status_code == 500
    assert requests.get(f"{host_installed.key_server_url}/{host_installed.kid}", timeout=10).ok


def test_a_failing_key_server_fails_the_install_on_the_app_side(
    host_site: Emulator,
) -> None:
    app = FakeApp(key_server=host_site.key_server_url).start()
    try:
        host_site.add_fault(503, path="/keys/")
        with pytest.raises(InstallError, match="response code 401"):
            host_site.install(app.base_url)
        assert "key" in app.last("installed").error.lower()
        host_site.install(app.base_url)  # the fault is used up
    finally:
        app.stop()


def test_the_control_api_is_never_faulted(host_site: Emulator) -> None:
    host_site.add_fault(500, count=5, path="/")
    assert requests.get(f"{host_site.url}/_emulator/faults", timeout=10).status_code == 200
    assert requests.delete(f"{host_site.url}/_emulator/faults", timeout=10).status_code == 204
    assert requests.get(f"{host_site.url}/", timeout=10).status_code == 200


def test_faults_over_http(host_installed: Emulator) -> None:
    api = f"{host_installed.url}/_emulator/faults"
    created = requests.post(api, json={"status": 429, "count": 3, "retry_after": 1}, timeout=10)
    assert created.status_code == 201
    assert created.json()["fault"]["remaining"] == 3
    assert_error(call(host_installed, "GET"), 429)
    listed = requests.get(api, timeout=10).json()
    assert listed["applied"] == 1
    assert [f["remaining"] for f in listed["faults"]] == [2]
    assert requests.delete(api, timeout=10).status_code == 204
    assert call(host_installed, "GET").status_code == 200


@pytest.mark.parametrize(
    "fault",
    [
        {},
        {"status": 200},
        {"status": "429"},
        {"status": 429, "drop": True},
        {"status": 429, "count": 0},
        {"status": 429, "count": 10**9},
        {"delay": -1},
        {"delay": 1000},
        {"drop": "yes"},
        {"status": 429, "retry_after": -5},
        {"status": 429, "path": "rest"},
        {"status": 429, "colour": "red"},
        [429],
        "429",
    ],
)
def test_invalid_faults_are_400(host_site: Emulator, fault: object) -> None:
    response = requests.post(f"{host_site.url}/_emulator/faults", json=fault, timeout=10)
    assert_error(response, 400)
    assert response.json()["message"].startswith("Invalid fault")
    assert host_site.faults.active() == []


def test_invalid_faults_in_python_raise_value_error() -> None:
    with pytest.raises(ValueError, match="status must be"):
        Fault(status=302)
    with pytest.raises(ValueError, match="say what to do"):
        Fault()
