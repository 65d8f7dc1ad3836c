"""The emulator's command line, shared by ``manage.py connect_host`` and
``python -m connect_settings.host`` (which needs no Django project).

Without a subcommand it serves: starts the emulator, installs ``--app-url`` if given, prints
the URL to open and runs until Ctrl-C. The subcommands drive a running emulator through its
control API (``--emulator``, default ``$CONNECT_HOST_URL`` or ``http://127.0.0.1:2990``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import requests

from .callbacks import InstallError
from .client import EmulatorClient, EmulatorClientError
from .descriptor import DescriptorError, descriptor_url_for
from .emulator import Emulator
from .products import PRODUCTS, get_product
from .state import StateFileError

__all__ = ["CliError", "add_arguments", "build_parser", "main", "run", "serve", "stop_on_signals"]

DEFAULT_EMULATOR = "http://127.0.0.1:2990"
ACTIONS = ("uninstall", "enable", "disable", "reinstall")


class CliError(Exception):
    """A command failed; the message is for the user (exit status 1)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    serve_options = parser.add_argument_group("serve (when no subcommand is given)")
    serve_options.add_argument("--product", choices=sorted(PRODUCTS), default="jira")
    serve_options.add_argument(
        "--port", type=int, default=None, help="default 2990 for Jira, 1990 for Confluence; 0 = any"
    )
    serve_options.add_argument("--app-url", help="install the app at this base or descriptor URL")
    serve_options.add_argument("--state-file", help="keep the site's state in this JSON file")
    serve_options.add_argument(
        "--forge-app-id", help="the Forge app's ARI (default: a new one, kept in the state file)"
    )
    serve_options.add_argument(
        "--forge-events-url", help="the app's Forge lifecycle endpoint (installed / upgraded)"
    )
    serve_options.add_argument(
        "--wait",
        type=float,
        default=30.0,
        help="seconds to wait for the app to answer before installing it (default 30)",
    )

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--emulator",
        default=os.environ.get("CONNECT_HOST_URL", DEFAULT_EMULATOR),
        help="URL of the running emulator (default $CONNECT_HOST_URL or %(default)s)",
    )
    install = sub.add_parser("install", parents=[common], help="install or upgrade an app")
    install.add_argument("app_url", help="the app's base URL or descriptor URL")
    for action in ACTIONS:
        command = sub.add_parser(action, parents=[common], help=f"{action} an installed app")
        command.add_argument("key", nargs="?", help="app key (default: the only installed app)")
    sub.add_parser("apps", parents=[common], help="list installed apps")
    props = sub.add_parser("properties", parents=[common], help="show an app's properties")
    props.add_argument("key", nargs="?", help="app key (default: the only installed app)")
    prop = sub.add_parser("property", parents=[common], help="show one app property")
    prop.add_argument("name")
    prop.add_argument("--app", dest="key", help="app key (default: the only installed app)")
    page = sub.add_parser("page-url", parents=[common], help="a freshly signed iframe URL")
    page.add_argument("key", nargs="?")
    page.add_argument("--module", help="page module key (default: the configure page)")
    fault = sub.add_parser("fault", parents=[common], help="fail the next requests on purpose")
    fault.add_argument("--status", type=int, help="answer with this status (429, 500, 503...)")
    fault.add_argument("--count", type=int, default=1, help="how many requests (default 1)")
    fault.add_argument("--retry-after", type=int, help="Retry-After seconds (with --status)")
    fault.add_argument("--delay", type=float, default=0.0, help="hold answers back (seconds)")
    fault.add_argument("--drop", action="store_true", help="close the connection unanswered")
    fault.add_argument("--path", help="path prefix to fault (default: the product REST API)")
    fault.add_argument("--method", help="only this HTTP method")
    fault.add_argument("--list", action="store_true", help="show active faults")
    fault.add_argument("--clear", action="store_true", help="remove all faults")
    _add_forge_commands(sub, common)


def _add_forge_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    forge = sub.add_parser("forge", parents=[common], help="show the site's Forge side")
    forge.add_argument("--events-url", help="register the app's Forge lifecycle endpoint")
    forge.add_argument(
        "--no-events-url", action="store_true", help="forget the registered endpoint"
    )
    fit = sub.add_parser("forge-fit", parents=[common], help="a Forge invocation token (FIT)")
    fit.add_argument("--module-key", default="remote-endpoint")
    fit.add_argument("--module-type", default="core:endpoint")
    fit.add_argument("--principal", help="the user's accountId (a UI call)")
    fit.add_argument("--context", help="frontend context as JSON ('{}': the defaults)")
    fit.add_argument("--ttl", type=int, default=25, help="seconds (default 25)")
    token = sub.add_parser("system-token", parents=[common], help="the app's system token")
    token.add_argument("--ttl", type=int, help="seconds (default and at most 4 hours)")
    move = sub.add_parser(
        "move-to-forge",
        parents=[common],
        help="move the site to the app's Forge version (Connect goes, with no event)",
    )
    move.add_argument("key", nargs="?", help="app key (default: the Forge app's Connect key)")
    sub.add_parser(
        "forge-reinstall",
        parents=[common],
        help="reinstall on Forge: new installation id, avi:forge:installed:app",
    )
    event = sub.add_parser(
        "forge-event", parents=[common], help="deliver a Forge lifecycle event, with retries"
    )
    event.add_argument("url", nargs="?", help="endpoint (default: the registered one)")
    event.add_argument("--type", choices=("installed", "upgraded"), default="installed")
    event.add_argument("--wrapped", action="store_true", help='send {"payload": ...} at once')
    event.add_argument("--attempts", type=int, default=4)
    event.add_argument("--retry-delay", type=float, default=60.0, help="seconds (default 60)")
    event.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")


def build_parser(prog: str = "connect_host") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="A local Atlassian Cloud site for Connect apps."
    )
    add_arguments(parser)
    return parser


def _print_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def run(options: dict[str, Any], out: TextIO, *, stop: threading.Event | None = None) -> None:
    """Carry out a parsed command line; :class:`CliError` on failure."""
    command = options.get("command")
    if not command:
        serve(options, out, stop=stop)
        return
    client = EmulatorClient(options["emulator"])
    try:
        _run_client(command, options, client, out)
    except EmulatorClientError as err:
        raise CliError(str(err)) from err


def _run_client(command: str, options: dict[str, Any], client: EmulatorClient, out: TextIO) -> None:
    key = options.get("key")
    if command == "install":
        app = client.install(options["app_url"])
        out.write(f"Installed {app['name']} ({app['key']}), {app['state']}.\n")
    elif command in ACTIONS:
        result = client.action(command, key)
        for event in result.get("events", []):
            status = event["status"] if event["status"] is not None else "no answer"
            out.write(f"  {event['event']} -> {status}\n")
        out.write(f"{command.capitalize()} done.\n")
    elif command == "apps":
        apps = client.apps()
        for app in apps:
            out.write(f"{app['key']}\t{app['state']}\t{app['name']}\t{app['baseUrl']}\n")
        if not apps:
            out.write("No app is installed.\n")
    elif command == "properties":
        _print_json(client.properties(key), out)
    elif command == "property":
        properties = client.properties(key)
        if options["name"] not in properties:
            raise CliError(f"The app has no property {options['name']!r}.")
        _print_json(properties[options["name"]], out)
    elif command == "page-url":
        out.write(client.page_url(key, options.get("module")) + "\n")
    elif command == "fault":
        _fault(options, client, out)
    else:
        _run_forge(command, options, client, out)


def _run_forge(command: str, options: dict[str, Any], client: EmulatorClient, out: TextIO) -> None:
    if command == "forge":
        if options.get("no_events_url"):
            client.set_forge_events_url(None)
        elif options.get("events_url"):
            client.set_forge_events_url(options["events_url"])
        _print_json(client.forge(), out)
    elif command == "forge-fit":
        fit: dict[str, Any] = {
            "moduleKey": options["module_key"],
            "moduleType": options["module_type"],
            "ttl": options["ttl"],
        }
        if options.get("principal"):
            fit["principal"] = options["principal"]
        if options.get("context") is not None:
            try:
                fit["context"] = json.loads(options["context"])
            except ValueError as err:
                raise CliError(f"--context is not JSON: {err}") from err
        out.write(client.forge_fit(**fit) + "\n")
    elif command == "system-token":
        out.write(client.system_token(options.get("ttl")) + "\n")
    elif command == "move-to-forge":
        result = client.forge_action("move", {"key": options["key"]} if options.get("key") else {})
        out.write(
            f"Moved {result['moved']['key']} to Forge: its Connect version is gone (no lifecycle "
            f"event); Forge installation {result['forge']['installationId']}.\n"
        )
    elif command == "forge-reinstall":
        result = client.forge_action("reinstall")
        _print_deliveries(result["deliveries"], out)
        out.write(f"Reinstalled on Forge: installation {result['forge']['installationId']}.\n")
    elif command == "forge-event":
        deliveries = client.deliver_forge_event(
            url=options.get("url"),
            eventType=f"avi:forge:{options['type']}:app",
            wrapped=bool(options.get("wrapped")),
            attempts=options["attempts"],
            retryDelay=options["retry_delay"],
            timeout=options["timeout"],
        )
        _print_deliveries(deliveries, out)
        if not deliveries or not deliveries[-1]["ok"]:
            raise CliError(f"Not delivered after {len(deliveries)} attempts.")
        out.write("Delivered.\n")


def _print_deliveries(deliveries: list[dict[str, Any]], out: TextIO) -> None:
    for item in deliveries:
        out.write(f"  {item['eventType']} attempt {item['attempt']} -> {item['detail']}\n")


def _fault(options: dict[str, Any], client: EmulatorClient, out: TextIO) -> None:
    if options.get("clear"):
        client.clear_faults()
        out.write("Faults cleared.\n")
        return
    if options.get("list"):
        _print_json(client.faults(), out)
        return
    fault = {
        name: options.get(name)
        for name in ("status", "count", "retry_after", "delay", "drop", "path", "method")
        if options.get(name) not in (None, False, 0.0)
    }
    added = client.add_fault(**fault)
    out.write(f"Fault set: {json.dumps(added, sort_keys=True)}\n")


def _wait_for_app(app_url: str, seconds: float, stop: threading.Event) -> None:
    """Wait until the descriptor answers (the app may be starting next to us), bounded."""
    url = descriptor_url_for(app_url)
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        try:
            with requests.get(url, timeout=2) as response:
                if response.status_code < 500:
                    return
        except requests.RequestException:
            pass
        if time.monotonic() >= deadline:
            return
        stop.wait(0.25)


def serve(
    options: dict[str, Any],
    out: TextIO,
    *,
    stop: threading.Event | None = None,
    on_ready: Callable[[Emulator], None] | None = None,
) -> None:
    """Run an emulator until ``stop`` is set, Ctrl-C or SIGTERM."""
    product = get_product(options.get("product") or "jira")
    port = options.get("port")
    stop = stop or threading.Event()
    try:
        emulator = Emulator(
            product.name,
            port=product.default_port if port is None else port,
            state_file=options.get("state_file"),
            forge_app_id=options.get("forge_app_id"),
            forge_events_url=options.get("forge_events_url"),
        ).start()
    except OSError as err:
        raise CliError(f"Cannot listen on port {port or product.default_port}: {err}") from err
    except (StateFileError, ValueError) as err:
        raise CliError(str(err)) from err
    restore = stop_on_signals(stop)
    try:
        out.write(
            f"{product.display_name} emulator: site {emulator.base_url}\n"
            f"  key server: {emulator.key_server_url}  "
            "(the app's CONNECT_INSTALL_KEY_SERVERS)\n"
            f"  Forge app {emulator.forge_app_id}, JWKS {emulator.forge_jwks_url}\n"
        )
        app_url = options.get("app_url")
        if app_url:
            _wait_for_app(app_url, float(options.get("wait") or 0), stop)
            try:
                app = emulator.install(app_url)
                out.write(f"  installed {app.name} ({app.key})\n")
            except (DescriptorError, InstallError) as err:
                out.write(f"  {err}\n  (fix the app, then install again from the page)\n")
        out.write(f"open {emulator.url}/\n")
        out.flush()
        if on_ready is not None:
            on_ready(emulator)
        try:
            # A timed wait keeps the main thread responsive to signals on every platform.
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        restore()
        emulator.stop()
        out.write("connect_host stopped.\n")


def stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Make SIGINT and SIGTERM set ``stop`` (main thread only); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    import sys

    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        run(vars(args), out)
    except CliError as err:
        sys.stderr.write(f"connect_host: {err}\n")
        return 1
    return 0
