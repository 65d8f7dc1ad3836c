"""The admin's view: a "Manage apps" page with the selected app's page in an iframe.

Every value that comes from a descriptor or an app is escaped; the page's scripts come from
the emulator only (see the Content-Security-Policy built here).
"""

from __future__ import annotations

import json
import re
import time
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from .descriptor import page_modules
from .emulator import AppNotInstalled
from .pages import PageNotFound
from .replies import Reply
from .state import Installation

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = ["render_admin"]

#: What an origin may look like to go into the page's CSP (a descriptor is untrusted input).
_SAFE_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _json_for_script(data: Any) -> str:
    # Inside <script type="application/json">, only "<" can end the element early.
    return json.dumps(data).replace("<", "\\u003c")


def _app_card(emu: Emulator, app: Installation, selected: str | None) -> str:
    key = escape(app.key)
    toggle = "disable" if app.enabled else "enable"
    lozenge = (
        '<span class="lozenge on">ENABLED</span>'
        if app.enabled
        else ('<span class="lozenge off">DISABLED</span>')
    )
    links = (
        " ".join(
            f'<a class="button" href="/?app={quote(app.key)}&amp;module={quote(m.key)}">'
            f"{escape(m.name or m.key)}</a>"
            for m in page_modules(app.descriptor)
        )
        if app.enabled
        else ""
    )
    props = emu.properties(app.key)
    rows = "".join(
        f"<tr><td><code>{escape(k)}</code></td><td><pre>{escape(json.dumps(v))}</pre></td></tr>"
        for k, v in sorted(props.items())
    )
    table = (
        f"<table><tr><th>App property</th><th>Value</th></tr>{rows}</table>"
        if rows
        else '<p class="empty">No app properties stored.</p>'
    )
    open_attr = " open" if selected == app.key else ""
    return f"""
<div class="app">
  <div class="row">
    <span class="title">{escape(app.name)}</span> {lozenge}
    {links}
    <button data-action="{toggle}" data-app="{key}">{toggle.capitalize()}</button>
    <button data-action="reinstall" data-app="{key}">Update</button>
    <button class="danger" data-action="uninstall" data-app="{key}">Uninstall</button>
  </div>
  <div class="meta">Key <code>{key}</code> · base URL <code>{escape(app.app_base_url)}</code>
    · installation <code>{escape(app.installation_id)}</code></div>
  <details{open_attr}><summary class="meta">App properties ({len(props)})</summary>
    {table}</details>
</div>"""


def _events_table(emu: Emulator) -> str:
    rows = "".join(
        f"<tr><td>{escape(time.strftime('%H:%M:%S', time.localtime(e.at)))}</td>"
        f"<td><code>{escape(e.app_key)}</code></td><td>{escape(e.event)}</td>"
        f"<td>{'ok' if e.ok else 'failed'}</td><td><pre>{escape(e.detail)}</pre></td></tr>"
        for e in reversed(emu.events[-20:])
    )
    if not rows:
        return '<p class="empty">No lifecycle callbacks sent yet.</p>'
    return (
        "<table><tr><th>Time</th><th>App</th><th>Event</th><th>Result</th><th>Detail</th></tr>"
        f"{rows}</table>"
    )


def _faults_section(emu: Emulator) -> str:
    faults = emu.faults.active()
    if not faults:
        return '<p class="empty">No faults set. <code>POST /_emulator/faults</code> sets one.</p>'
    items = "".join(f"<li><code>{escape(json.dumps(f.to_json()))}</code></li>" for f in faults)
    return f'<ul>{items}</ul><button data-action="clear-faults">Clear faults</button>'


def _forge_section(emu: Emulator) -> str:
    forge = emu.describe_forge()
    moved = forge["movedToForge"]
    connect_key = forge["connectKey"]
    installed = connect_key is not None and any(a.key == connect_key for a in emu.installations())
    if moved:
        status = '<span class="lozenge off">FORGE ONLY</span> the Connect version was removed'
    elif installed:
        status = '<span class="lozenge on">CONNECT ON FORGE</span>'
    else:
        status = '<span class="lozenge off">NO CONNECT APP</span>'
    rows = [
        ("App", forge["appId"]),
        ("app.connect.key", connect_key or "(the first Connect app installed)"),
        ("Cloud id", forge["cloudId"]),
        ("Installation", forge["installationId"]),
        ("Environment", f"{forge['environment']['type']} · version {forge['appVersion']}"),
        ("apiBaseUrl", forge["apiBaseUrl"]),
        ("JWKS", forge["jwksUrl"]),
        ("Events endpoint", forge["eventsUrl"] or "(none registered)"),
    ]
    table = "".join(
        f"<tr><th>{escape(name)}</th><td><code>{escape(value)}</code></td></tr>"
        for name, value in rows
    )
    move = '<button class="danger" data-forge="move">Move to Forge</button>' if installed else ""
    deliveries = "".join(
        f"<tr><td>{escape(time.strftime('%H:%M:%S', time.localtime(d.at)))}</td>"
        f"<td>{escape(d.event_type)}</td><td>{d.attempt}</td>"
        f"<td>{'ok' if d.ok else 'failed'}</td><td><pre>{escape(d.detail)}</pre></td></tr>"
        for d in reversed(emu.forge_deliveries[-20:])
    )
    events = (
        "<table><tr><th>Time</th><th>Event</th><th>Attempt</th><th>Result</th><th>Detail</th>"
        f"</tr>{deliveries}</table>"
        if deliveries
        else '<p class="empty">No Forge events delivered yet.</p>'
    )
    return f"""
<div class="app" id="forge">
  <div class="row"><span class="title">Forge</span> {status} {move}
    <button data-forge="reinstall">Reinstall on Forge</button>
    <button data-forge="upgrade">Major upgrade</button></div>
  <table>{table}</table>
  {events}
</div>"""


def _frame(
    emu: Emulator, selected: str | None, module_key: str | None
) -> tuple[str, dict[str, Any]]:
    """The iframe section and the data the host bridge needs."""
    enabled = [a for a in emu.installations() if a.enabled and page_modules(a.descriptor)]
    if selected is None and enabled:
        selected = enabled[0].key
    app = next((a for a in enabled if a.key == selected), None)
    if app is None:
        return '<p class="empty">Enable an app with a page module to see it here.</p>', {}
    try:
        url = emu.page_url(app.key, module_key)
    except (PageNotFound, AppNotInstalled) as err:
        return f'<p class="empty">{escape(str(err))}</p>', {}
    name = json.dumps({"xdm_e": emu.url, "app": app.key, "module": module_key or ""})
    html = (
        f"<h2>{escape(app.name)}</h2>"
        f'<div class="frame-wrap"><iframe id="ap-frame" src="{escape(url)}" '
        f'name="{escape(name)}" title="{escape(app.name)}" '
        'sandbox="allow-scripts allow-forms allow-same-origin allow-popups allow-downloads '
        'allow-modals"></iframe></div>'
    )
    data = {
        "appKey": app.key,
        "appOrigin": _origin(app.app_base_url),
        "accountId": emu.account_id,
        "context": {emu.product.name: {}, "license": {"active": False}},
    }
    return html, data


def render_admin(emu: Emulator, *, app: str | None = None, module: str | None = None) -> Reply:
    apps = emu.installations()
    frame_html, frame_data = _frame(emu, app, module)
    cards = "".join(_app_card(emu, a, app) for a in apps) or (
        '<p class="empty">No apps installed. Upload one by its URL.</p>'
    )
    product = escape(emu.product.display_name)
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Manage apps - {product} (connect_settings host emulator)</title>
<link rel="stylesheet" href="/_emulator/host.css"></head>
<body>
<header class="nav"><span class="logo">{product}</span>
  <span class="site">emulated site {escape(emu.base_url)} · clientKey
  <code>{escape(emu.client_key)}</code></span></header>
<main>
<h1>Manage apps</h1>
<div id="flash" class="flash" role="status"></div>
<form id="upload" class="upload">
  <input name="url" type="url" required placeholder="App URL, e.g. http://127.0.0.1:8000/atlassian-connect.json">
  <button class="primary" type="submit">Upload app</button>
</form>
<h2>User-installed apps</h2>
{cards}
{frame_html}
<h2>Lifecycle callbacks</h2>
{_events_table(emu)}
<h2>Forge</h2>
{_forge_section(emu)}
<h2>Faults</h2>
{_faults_section(emu)}
<h2>Site</h2>
<div class="meta">Key server <code>{escape(emu.key_server_url)}</code> (kid
  <code>{escape(emu.kid)}</code>) · acting user <code>{escape(emu.account_id)}</code></div>
</main>
<div id="flags" class="flags"></div>
<script type="application/json" id="host-data">{_json_for_script(frame_data)}</script>
<script src="/_emulator/host.js"></script>
</body></html>"""
    origins = {_origin(a.app_base_url) for a in apps}
    frame_sources = " ".join(sorted(o for o in origins if _SAFE_ORIGIN.fullmatch(o)))
    csp = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'; frame-src 'self' {frame_sources}; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    return Reply(
        200,
        body.encode("utf-8"),
        content_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff"},
    )
