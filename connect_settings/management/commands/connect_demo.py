"""``manage.py connect_demo``: this project and a local Atlassian host, together, in one command.

Migrates, starts a host emulator, starts ``runserver`` with the settings that make it trust
the emulator (``CONNECT_BASE_URL``, ``CONNECT_INSTALL_KEY_SERVERS``,
``CONNECT_HOST_ALLOWLIST`` in its environment, and for Forge Remote ``CONNECT_FORGE_APP_ID``
and ``CONNECT_FORGE_JWKS_URLS``), installs the app once it answers, registers its Forge events
endpoint with the emulator and prints the URL to open. Ctrl-C stops both.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from connect_settings.host import DescriptorError, Emulator, InstallError
from connect_settings.host.cli import stop_on_signals
from connect_settings.host.products import PRODUCTS, get_product

STARTUP_SECONDS = 60


class Command(BaseCommand):
    help = "Run this project with a local Jira/Confluence emulator and install the app into it."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--product", choices=sorted(PRODUCTS), default="jira")
        parser.add_argument(
            "--port", type=int, default=None, help="emulator port (2990 Jira, 1990 Confluence)"
        )
        parser.add_argument("--app-port", type=int, default=8000, help="runserver port")
        parser.add_argument("--state-file", help="keep the emulator's state in this JSON file")
        parser.add_argument("--skip-migrate", action="store_true", help="do not run migrate")

    def handle(self, *args: Any, **options: Any) -> None:
        product = get_product(options["product"])
        if not options["skip_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        port = product.default_port if options["port"] is None else options["port"]
        try:
            emulator = Emulator(product.name, port=port, state_file=options["state_file"]).start()
        except OSError as err:
            raise CommandError(f"Cannot start the emulator on port {port}: {err}") from err
        app_url = f"http://127.0.0.1:{options['app_port']}"
        emulator.forge_events_url = f"{app_url}/forge/events"
        stop = threading.Event()
        restore = stop_on_signals(stop)
        server = self._runserver(app_url, options["app_port"], emulator)
        try:
            if not self._wait_for_app(app_url, server, stop):
                raise CommandError(f"The app did not start at {app_url}.")
            try:
                app = emulator.install(app_url)
                self.stdout.write(f"Installed {app.name} ({app.key}) into {emulator.base_url}")
            except (DescriptorError, InstallError) as err:
                self.stderr.write(str(err))
            self.stdout.write(f"open {emulator.url}/")
            self.stdout.flush()
            # Serve until Ctrl-C / SIGTERM, or until runserver exits by itself.
            while not stop.wait(0.5) and server.poll() is None:
                pass
        finally:
            restore()
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait(timeout=10)
            emulator.stop()
            self.stdout.write("connect_demo stopped.")

    def _runserver(
        self, app_url: str, app_port: int, emulator: Emulator
    ) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "CONNECT_BASE_URL": app_url,
            "CONNECT_INSTALL_KEY_SERVERS": emulator.key_server_url,
            "CONNECT_HOST_ALLOWLIST": "127.0.0.1,localhost",
            # The emulator stands in for the Forge platform too: its app id and JWKS.
            "CONNECT_FORGE_APP_ID": emulator.forge_app_id,
            "CONNECT_FORGE_JWKS_URLS": emulator.forge_jwks_url,
        }
        address = f"127.0.0.1:{app_port}"
        script = Path(sys.argv[0])
        if script.name == "manage.py":
            command = [sys.executable, str(script), "runserver", "--noreload", address]
        else:
            # Called some other way (call_command, django-admin): run Django as a module with
            # the same settings, importable from the current directory.
            command = [
                sys.executable,
                "-m",
                "django",
                "runserver",
                "--noreload",
                address,
                f"--settings={settings.SETTINGS_MODULE}",
            ]
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
        return subprocess.Popen(command, env=env)  # noqa: S603 (our own interpreter)

    def _wait_for_app(
        self, app_url: str, server: subprocess.Popen[bytes], stop: threading.Event
    ) -> bool:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and not stop.is_set() and server.poll() is None:
            try:
                with requests.get(f"{app_url}/atlassian-connect.json", timeout=2) as response:
                    if response.status_code == 200:
                        return True
            except requests.RequestException:
                pass
            stop.wait(0.25)
        return False
