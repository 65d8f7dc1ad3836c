"""``connect_host`` (serve and the subcommands) and the ``connect_demo`` command, for real."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.core.management import CommandError, call_command

from connect_settings.host import Emulator
from connect_settings.host.cli import main
from tests.host_support import APP_KEY, FakeApp, assert_error, call

pytest_plugins = ["tests.host_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 60


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out)
    return code, out.getvalue()


@pytest.fixture
def emu_url(host_site: Emulator) -> str:
    return host_site.url


def test_client_subcommands_drive_a_running_emulator(
    host_site: Emulator, host_app: FakeApp, emu_url: str
) -> None:
    code, out = cli("install", host_app.base_url, "--emulator", emu_url)
    assert code == 0
    assert out == f"Installed Fake app ({APP_KEY}), ENABLED.\n"

    code, out = cli("apps", "--emulator", emu_url)
    assert out.startswith(f"{APP_KEY}\tENABLED\tFake app\t{host_app.base_url}")

    secret = host_site.shared_secret()
    code, out = cli("reinstall", "--emulator", emu_url)
    assert code == 0 and out == "Reinstall done.\n"
    assert host_site.shared_secret() != secret

    code, out = cli("disable", APP_KEY, "--emulator", emu_url)
    assert "disabled -> 204" in out and "Disable done." in out
    assert host_site.installation().enabled is False
    cli("enable", "--emulator", emu_url)
    assert host_site.installation().enabled is True

    call(host_site, "PUT", "colour", '{"v": 1}')
    code, out = cli("properties", "--emulator", emu_url)
    assert json.loads(out) == {"colour": {"v": 1}}
    code, out = cli("property", "colour", "--emulator", emu_url)
    assert json.loads(out) == {"v": 1}
    code, out = cli("page-url", "--module", "overview", "--emulator", emu_url)
    assert out.startswith(host_app.base_url + "/overview?")
    assert requests.get(out.strip(), timeout=10).status_code == 200

    code, out = cli("uninstall", "--emulator", emu_url)
    assert "disabled -> 204" in out and "uninstalled -> 204" in out
    assert host_site.installations() == []


def test_faults_from_the_command_line(host_installed: Emulator) -> None:
    url = host_installed.url
    code, out = cli(
        "fault", "--status", "429", "--count", "2", "--retry-after", "3", "--emulator", url
    )
    assert code == 0 and out.startswith("Fault set: ")
    code, out = cli("fault", "--list", "--emulator", url)
    assert json.loads(out)["faults"][0]["remaining"] == 2
    response = call(host_installed, "GET")
    assert_error(response, 429)
    assert response.headers["Retry-After"] == "3"
    cli("fault", "--clear", "--emulator", url)
    assert call(host_installed, "GET").status_code == 200
    cli("fault", "--drop", "--emulator", url)
    with pytest.raises(requests.ConnectionError):
        call(host_installed, "GET")
    code, _ = cli("fault", "--status", "200", "--emulator", url)
    assert code == 1


def test_failures_exit_1_with_the_reason(
    host_site: Emulator, emu_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = cli("uninstall", "--emulator", emu_url)
    assert code == 1
    assert "No app is installed." in capsys.readouterr().err
    code, _ = cli("install", "http://127.0.0.1:1/", "--emulator", emu_url)
    assert code == 1
    assert "could not be read" in capsys.readouterr().err
    code, _ = cli("apps", "--emulator", "http://127.0.0.1:1")
    assert code == 1
    assert "No emulator answers at http://127.0.0.1:1" in capsys.readouterr().err


def test_the_django_command_wraps_the_same_cli(host_site: Emulator, host_app: FakeApp) -> None:
    out = io.StringIO()
    call_command(
        "connect_host", "install", host_app.base_url, "--emulator", host_site.url, stdout=out
    )
    assert "Installed Fake app" in out.getvalue()
    with pytest.raises(CommandError, match="has no property 'nope'"):
        call_command("connect_host", "property", "nope", "--emulator", host_site.url)


# Real processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A child process whose output lines are read on a thread, so waits can time out."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = STARTUP_TIMEOUT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"{pattern!r} not printed; output:\n{''.join(self.output)}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    try:
        yield started
    finally:
        for process in started:
            if process.proc.poll() is None:
                process.proc.kill()
                process.proc.wait(timeout=30)


def test_serve_installs_the_app_and_prints_the_url(processes: list[Process]) -> None:
    # The fake app trusts a key server it learns only once the emulator is up: point it at
    # a URL that the emulator will serve (its port is chosen here).
    port = free_port()
    app = FakeApp(key_server=f"http://127.0.0.1:{port}/keys").start()
    try:
        process = Process(
            [
                sys.executable,
                "-m",
                "connect_settings.host",
                "--product",
                "confluence",
                "--port",
                str(port),
                "--app-url",
                app.base_url,
            ],
            env=dict(os.environ),
        )
        processes.append(process)
        process.wait_for(r"installed Fake app")
        url = process.wait_for(r"^open (http://127\.0\.0\.1:\d+)/$").group(1)
        assert url == f"http://127.0.0.1:{port}"
        assert app.last("installed").error == ""
        assert app.last("installed").body["baseUrl"] == f"{url}/wiki"
        page = requests.get(url + "/", timeout=10)
        assert "Fake app" in page.text and "ap-frame" in page.text
        assert process.stop() == 0
        process.wait_for(r"connect_host stopped\.")
    finally:
        app.stop()


def test_connect_demo_runs_the_demo_app_with_an_installed_emulator(
    processes: list[Process], tmp_path: Path
) -> None:
    app_port, host_port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    process = Process(
        [
            sys.executable,
            "manage.py",
            "connect_demo",
            "--port",
            str(host_port),
            "--app-port",
            str(app_port),
        ],
        env=env,
    )
    processes.append(process)
    process.wait_for(r"Installed .* into http://127\.0\.0\.1")
    url = process.wait_for(r"^open (http://127\.0\.0\.1:\d+)/$").group(1)

    html = requests.get(url + "/", timeout=10).text
    match = re.search(r'<iframe id="ap-frame" src="([^"]+)"', html)
    assert match
    page = requests.get(match.group(1).replace("&amp;", "&"), timeout=10)
    assert page.status_code == 200
    assert page.headers.get("X-acpt")

    # The demo trusts the emulator's Forge side: a FIT it mints reaches the same tenant.
    forge = requests.get(f"{url}/_emulator/forge", timeout=10).json()
    assert forge["eventsUrl"] == f"http://127.0.0.1:{app_port}/forge/events"
    fit = requests.post(f"{url}/_emulator/forge/fit", json={"context": {}}, timeout=10).json()
    system = requests.post(f"{url}/_emulator/forge/system-token", json={}, timeout=10).json()
    response = requests.get(
        f"http://127.0.0.1:{app_port}/forge/settings",
        headers={
            "Authorization": f"Bearer {fit['token']}",
            "x-forge-oauth-system": system["token"],
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["installationId"] == forge["installationId"]

    assert process.stop() == 0
    process.wait_for(r"connect_demo stopped\.")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{app_port}/atlassian-connect.json", timeout=5)
