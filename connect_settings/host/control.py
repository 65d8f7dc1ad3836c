"""The emulator's own JSON API under ``/_emulator/``: what the admin page and the CLI drive.

    GET    /_emulator                            the site (no secrets)
    GET    /_emulator/apps                       installed apps
    POST   /_emulator/apps            {"url"}    install (or upgrade) an app
    GET    /_emulator/apps/{key}                 one app, its page modules
    POST   /_emulator/apps/{key}/{action}        uninstall | enable | disable | reinstall
    GET    /_emulator/apps/{key}/properties      the app's properties (admin view, no JWT)
    GET    /_emulator/apps/{key}/page-url        ?module=: a freshly signed iframe URL
    POST   /_emulator/apps/{key}/context-token   what AP.context.getToken() returns
    GET    /_emulator/events                     lifecycle callbacks sent
    GET    /_emulator/faults                     active faults
    POST   /_emulator/faults          {fault}    add a fault (see faults.Fault)
    DELETE /_emulator/faults                     clear all faults
    GET    /_emulator/forge                      the Forge side: app id, cloud id, installation
    PUT    /_emulator/forge           {"eventsUrl"}  register (null: forget) the events endpoint
    POST   /_emulator/forge/fit       {fit}      a FIT ("moduleKey", "moduleType", "principal",
                                                 "context", "ttl")
    POST   /_emulator/forge/system-token {"ttl"} the app's system token
    POST   /_emulator/forge/move      {"key"}    move the site to the Forge version (no event)
    POST   /_emulator/forge/reinstall            new installation id (+ installed event)
    POST   /_emulator/forge/upgrade              major upgrade (+ upgraded event)
    GET    /_emulator/forge/events               Forge event deliveries so far
    POST   /_emulator/forge/events    {event}    deliver one ("url", "eventType", "wrapped",
                                                 "attempts", "retryDelay", "timeout")

Requests with a body must be ``application/json``: a foreign web page cannot send that to
127.0.0.1 without a CORS preflight, which the emulator never grants.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from .callbacks import InstallError
from .descriptor import DescriptorError, page_modules
from .emulator import AppNotInstalled
from .faults import Fault
from .forge_remote import ForgeDelivery
from .pages import PageNotFound
from .replies import Reply, error, json_reply

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = ["handle_control"]

PREFIX = "/_emulator"
ACTIONS = ("uninstall", "enable", "disable", "reinstall")


def _read_json(body: bytes, content_type: str) -> tuple[Any, Reply | None]:
    if content_type.split(";")[0].strip().lower() != "application/json":
        return None, error(415, "Send the request body as application/json.")
    if not body.strip():
        return {}, None
    try:
        return json.loads(body), None
    except (ValueError, RecursionError):
        return None, error(400, "The request body is not valid JSON.")


def _app_view(emu: Emulator, key: str) -> dict[str, Any]:
    app = emu.installation(key)
    view = app.summary()
    view["modules"] = [asdict(m) for m in page_modules(app.descriptor)]
    return view


def handle_control(
    emu: Emulator, method: str, path: str, query: str, body: bytes, content_type: str
) -> Reply:
    parts = [unquote(p) for p in path[len(PREFIX) :].strip("/").split("/") if p]
    if method in ("POST", "PUT"):
        payload, problem = _read_json(body, content_type)
        if problem:
            return problem
    else:
        payload = {}
    try:
        return _route(emu, method, parts, parse_qs(query), payload)
    except DescriptorError as err:
        return json_reply(
            400, {"message": err.message, "problems": err.problems, "statusCode": 400}
        )
    except InstallError as err:
        return json_reply(502, {"message": err.message, "appStatus": err.status, "statusCode": 502})
    except (AppNotInstalled, PageNotFound) as err:
        return error(404, str(err))


def _route(
    emu: Emulator, method: str, parts: list[str], query: dict[str, list[str]], payload: Any
) -> Reply:
    if not parts:
        return json_reply(200, emu.describe()) if method == "GET" else _not_allowed("GET")
    head, rest = parts[0], parts[1:]
    if head == "apps":
        return _apps(emu, method, rest, query, payload)
    if head == "events" and not rest:
        if method != "GET":
            return _not_allowed("GET")
        return json_reply(200, {"events": [asdict(e) for e in emu.events]})
    if head == "faults" and not rest:
        return _faults(emu, method, payload)
    if head == "forge" and len(rest) <= 1:
        return _forge(emu, method, rest[0] if rest else None, payload)
    return error(404, "No such emulator resource.")


def _apps(
    emu: Emulator, method: str, rest: list[str], query: dict[str, list[str]], payload: Any
) -> Reply:
    if not rest:
        if method == "GET":
            return json_reply(200, {"apps": [a.summary() for a in emu.installations()]})
        if method != "POST":
            return _not_allowed("GET, POST")
        url = payload.get("url") if isinstance(payload, dict) else None
        if not isinstance(url, str) or not url.strip():
            return error(400, 'Send {"url": "<the app\'s base or descriptor URL>"}.')
        app = emu.install(url.strip())
        return json_reply(201, {"app": _app_view(emu, app.key)})
    key, sub = rest[0], rest[1:]
    if not sub:
        return json_reply(200, _app_view(emu, key)) if method == "GET" else _not_allowed("GET")
    if len(sub) > 1:
        return error(404, "No such emulator resource.")
    action = sub[0]
    if action in ACTIONS:
        if method != "POST":
            return _not_allowed("POST")
        if action == "uninstall":
            events = emu.uninstall(key)
            return json_reply(200, {"events": [asdict(e) for e in events]})
        if action == "reinstall":
            app = emu.reinstall(key)
            return json_reply(200, {"app": _app_view(emu, app.key)})
        event = emu.enable(key) if action == "enable" else emu.disable(key)
        return json_reply(
            200,
            {"app": _app_view(emu, key), "events": [asdict(event)] if event else []},
        )
    if action == "properties" and method == "GET":
        emu.installation(key)
        return json_reply(200, {"properties": emu.properties(key)})
    if action == "page-url" and method == "GET":
        module = (query.get("module") or [None])[0]
        return json_reply(200, {"url": emu.page_url(key, module)})
    if action == "context-token" and method == "POST":
        return json_reply(200, {"token": emu.context_token(key)})
    return error(404, "No such emulator resource.")


def _faults(emu: Emulator, method: str, payload: Any) -> Reply:
    if method == "GET":
        return json_reply(
            200,
            {"faults": [f.to_json() for f in emu.faults.active()], "applied": emu.faults.applied},
        )
    if method == "DELETE":
        emu.clear_faults()
        return Reply(204)
    if method != "POST":
        return _not_allowed("GET, POST, DELETE")
    try:
        fault = emu.faults.add(Fault.from_json(payload))
    except (TypeError, ValueError) as err:
        return error(400, f"Invalid fault: {err}")
    return json_reply(201, {"fault": fault.to_json()})


def _field(payload: Any, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = payload.get(name, default) if isinstance(payload, dict) else default
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # A bool is an int to Python; accept one only where a bool is asked for.
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise ValueError(f"{name} must be {' or '.join(k.__name__ for k in kinds)}")
    return value


def _deliveries(results: list[ForgeDelivery], **extra: Any) -> Reply:
    return json_reply(200, {**extra, "deliveries": [r.to_json() for r in results]})


def _forge(emu: Emulator, method: str, action: str | None, payload: Any) -> Reply:
    try:
        return _forge_action(emu, method, action, payload)
    except ValueError as err:
        return error(400, f"Invalid request: {err}")
    except LookupError as err:
        return error(404, str(err.args[0]) if err.args else "Not found.")


def _forge_action(emu: Emulator, method: str, action: str | None, payload: Any) -> Reply:
    if action is None:
        if method == "PUT":
            url = _field(payload, "eventsUrl", str)
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError("eventsUrl must be an http(s) URL")
            emu.forge_events_url = url
        elif method != "GET":
            return _not_allowed("GET, PUT")
        return json_reply(200, emu.describe_forge())
    if action == "events" and method == "GET":
        return _deliveries(emu.forge_deliveries)
    if method != "POST":
        return _not_allowed("POST")
    if action == "fit":
        context = _field(payload, "context", dict)
        token = emu.mint_fit(
            module_key=_field(payload, "moduleKey", str, "remote-endpoint"),
            module_type=_field(payload, "moduleType", str, "core:endpoint"),
            principal=_field(payload, "principal", str),
            context=context,
            ttl=_bounded(_field(payload, "ttl", int, 25), 1, 3600, "ttl"),
        )
        return json_reply(200, {"token": token})
    if action == "system-token":
        ttl = _field(payload, "ttl", int, 4 * 3600)
        return json_reply(200, {"token": emu.system_token(ttl)})
    if action == "move":
        moved = emu.move_to_forge(_field(payload, "key", str))
        return json_reply(200, {"moved": moved.summary(), "forge": emu.describe_forge()})
    if action in ("reinstall", "upgrade"):
        results = emu.reinstall_forge() if action == "reinstall" else emu.upgrade_forge()
        return _deliveries(results, forge=emu.describe_forge())
    if action == "events":
        results = emu.deliver_forge_event(
            _field(payload, "url", str),
            _field(payload, "eventType", str, "avi:forge:installed:app"),
            wrapped=bool(_field(payload, "wrapped", bool, False)),
            attempts=_bounded(_field(payload, "attempts", int, 4), 1, 10, "attempts"),
            retry_delay=_bounded(
                _field(payload, "retryDelay", (int, float), 60.0), 0, 600, "retryDelay"
            ),
            timeout=_bounded(_field(payload, "timeout", (int, float), 5.0), 0.01, 60, "timeout"),
        )
        return _deliveries(results)
    return error(404, "No such emulator resource.")


def _bounded(value: Any, low: float, high: float, name: str) -> Any:
    if not low <= value <= high:
        raise ValueError(f"{name} must be {low}-{high}")
    return value


def _not_allowed(allow: str) -> Reply:
    return error(405, "Method not allowed here.", {"Allow": allow})
