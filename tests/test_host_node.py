"""Independent checks with Node: ``atlassian-jwt`` (npm) verifies the emulator's tokens and
signs app calls the emulator must accept; the ``AP`` stand-in and the host page's bridge run
in a scripted browser-like sandbox. Skipped without node, never under ``CI=true``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from connect_settings.host import Emulator
from connect_settings.host.assets import ALL_JS, HOST_JS
from connect_settings.host.testing import EmulatorFactory
from tests.host_support import APP_KEY, FakeApp, prop_url
from tests.node_support import AtlassianJwt, install_atlassian_jwt, unavailable

pytestmark = pytest.mark.node
pytest_plugins = ["tests.host_fixtures"]


@pytest.fixture(scope="module")
def atlassian_jwt(tmp_path_factory: pytest.TempPathFactory) -> AtlassianJwt:
    return install_atlassian_jwt(tmp_path_factory.mktemp("host-atlassian-jwt"))


@pytest.fixture
def sites(connect_host_factory: EmulatorFactory) -> Any:
    """Both products, each with a fake app under ``/app`` and one at the root, installed."""
    apps: list[FakeApp] = []
    installed: list[tuple[Emulator, FakeApp]] = []
    for product in ("jira", "confluence"):
        for base_path in ("/app", ""):
            emu = connect_host_factory(product)
            app = FakeApp(key_server=emu.key_server_url, base_path=base_path).start()
            apps.append(app)
            app.descriptor_overrides["modules"] = {
                "configurePage": {"key": "configure", "url": "/configure", "name": {"value": "C"}},
                "generalPages": [
                    {"key": "q", "url": "/p/page?tab=main&x=a+b", "name": {"value": "Q"}},
                    {"key": "v", "url": "/v?project={project.key}&id={id}", "name": {"value": "V"}},
                ],
            }
            emu.install(app.base_url)
            installed.append((emu, app))
    try:
        yield installed
    finally:
        for app in apps:
            app.stop()


def test_atlassian_jwt_verifies_page_tokens_and_their_qsh(
    atlassian_jwt: AtlassianJwt, sites: list[tuple[Emulator, FakeApp]]
) -> None:
    urls: list[tuple[str, str, str]] = []
    for emu, app in sites:
        secret = emu.shared_secret()
        urls.append((emu.page_url(), secret, app.base_url))
        urls.append((emu.page_url(module="q"), secret, app.base_url))
        for value in ("A B", "ü/ä?&=", "a+b", "~*'()"):
            url = emu.page_url(module="v", context={"project.key": value, "id": "1"})
            urls.append((url, secret, app.base_url))

    tokens = [url.rsplit("&jwt=", 1)[1] for url, _, _ in urls]
    claims = atlassian_jwt.run_ok(
        "decode", [{"token": t, "secret": s} for t, (_, s, _) in zip(tokens, urls, strict=True)]
    )
    hashes = atlassian_jwt.run_ok(
        "canonical", [{"method": "GET", "url": u, "baseUrl": base} for u, _, base in urls]
    )
    for (url, _, _), claim, computed in zip(urls, claims, hashes, strict=True):
        assert claim["qsh"] == computed["qsh"], (url, computed["canonical"])
        assert claim["exp"] > time.time()


def test_atlassian_jwt_verifies_context_and_lifecycle_tokens(
    atlassian_jwt: AtlassianJwt, sites: list[tuple[Emulator, FakeApp]]
) -> None:
    decode_items: list[dict[str, str]] = []
    canonical_items: list[dict[str, str]] = []
    for emu, app in sites:
        secret = emu.shared_secret()
        decode_items.append({"token": emu.context_token(), "secret": secret})
        emu.disable()
        emu.enable()
        for event in ("disabled", "enabled"):
            received = app.last(event)
            decode_items.append({"token": received.token, "secret": secret})
            url = app.origin + received.path
            canonical_items.append({"method": "POST", "url": url, "baseUrl": app.base_url})
    claims = atlassian_jwt.run_ok("decode", decode_items)
    hashes = atlassian_jwt.run_ok("canonical", canonical_items)
    context_claims = claims[::3]
    lifecycle_claims = [c for i, c in enumerate(claims) if i % 3]
    assert all(c["qsh"] == "context-qsh" for c in context_claims)
    assert [c["qsh"] for c in lifecycle_claims] == [h["qsh"] for h in hashes]


def test_app_calls_signed_by_atlassian_jwt_are_accepted(
    atlassian_jwt: AtlassianJwt, sites: list[tuple[Emulator, FakeApp]]
) -> None:
    # What ACE does for a product REST call: qsh relative to the product's baseUrl.
    now = int(time.time())
    requests_to_sign = []
    for emu, _ in sites:
        emu.set_property("colour", "blue")
        emu.set_property("k", [1])
        for prop, query in (("colour", ""), (None, ""), ("k", "expand=a,b&z=1")):
            url = prop_url(emu, prop) + (f"?{query}" if query else "")
            requests_to_sign.append((emu, url))
    tokens = atlassian_jwt.run_ok(
        "sign_request",
        [
            {
                "method": "GET",
                "url": url,
                "baseUrl": emu.base_url,
                "claims": {"iss": APP_KEY, "iat": now, "exp": now + 180},
                "secret": emu.shared_secret(),
            }
            for emu, url in requests_to_sign
        ],
    )
    for (_, url), token in zip(requests_to_sign, tokens, strict=True):
        response = requests.get(url, headers={"Authorization": f"JWT {token}"}, timeout=10)
        assert response.status_code == 200, (url, response.text)


# The AP stand-in and the host bridge, run by node in a sandbox ------------------------------

HARNESS_JS = r"""
'use strict';
const vm = require('vm');
const fs = require('fs');
const [allJs, hostJs] = [fs.readFileSync(process.argv[2], 'utf8'),
                         fs.readFileSync(process.argv[3], 'utf8')];
const flush = () => new Promise((resolve) => setImmediate(resolve));
const results = {};

async function apInFrame() {
  const listeners = [];
  const posted = [];
  const parent = {postMessage: (msg, origin) => posted.push({msg, origin})};
  const window = {
    name: JSON.stringify({xdm_e: 'http://host.test'}),
    parent,
    addEventListener: (type, fn) => { if (type === 'message') listeners.push(fn); },
  };
  window.window = window;
  const context = {
    window, console, Promise, JSON, Math, URLSearchParams, setTimeout,
    location: {search: '?xdm_e=http%3A%2F%2Fhost.test&cp=&jwt=x'},
    document: {readyState: 'complete', addEventListener() {},
               documentElement: {getBoundingClientRect: () => ({height: 321.4})}},
  };
  vm.createContext(context);
  vm.runInContext(allJs, context);
  const AP = window.AP;
  const deliver = (source, origin, data) => listeners.forEach((fn) => fn({source, origin, data}));

  results.autoResize = posted[0];
  let called = null;
  const promise = AP.context.getToken((token) => { called = token; });
  const request = posted[posted.length - 1];
  results.tokenRequest = request;
  deliver(parent, 'http://evil.test', {type: 'ap-response', id: request.msg.id, result: 'evil'});
  deliver({}, 'http://host.test', {type: 'ap-response', id: request.msg.id, result: 'evil'});
  await flush();
  results.ignoredForeign = called === null;
  deliver(parent, 'http://host.test', {type: 'ap-response', id: request.msg.id, result: 'tok'});
  results.token = await promise;
  await flush();
  results.callback = called;
  const failing = AP.user.getCurrentUser();
  const failed = posted[posted.length - 1];
  deliver(parent, 'http://host.test', {type: 'ap-response', id: failed.msg.id, error: 'nope'});
  results.rejected = await failing.then(() => 'resolved', (err) => err.message);
  results.requestRejects = await AP.request({url: '/x'}).then(() => 'resolved', () => 'rejected');
}

async function hostBridge() {
  const listeners = [];
  const posted = [];
  const fetched = [];
  const frame = {contentWindow: {postMessage: (msg, origin) => posted.push({msg, origin})},
                 style: {}};
  const data = {appKey: 'com.example.app', appOrigin: 'http://app.test',
                accountId: '557058:abc', context: {jira: {}}};
  const elements = {
    'host-data': {textContent: JSON.stringify(data)},
    'flash': {}, 'ap-frame': frame, 'flags': {appendChild() {}}, 'upload': null,
  };
  const window = {addEventListener: (type, fn) => { if (type === 'message') listeners.push(fn); },
                  innerHeight: 900};
  const context = {
    window, console, Promise, JSON, Math, setTimeout, encodeURIComponent,
    document: {getElementById: (id) => elements[id], addEventListener() {},
               createElement: () => ({appendChild() {}, remove() {}})},
    sessionStorage: {getItem: () => null, setItem() {}, removeItem() {}},
    location: {reload() {}},
    fetch: (url, options) => {
      fetched.push({url, options});
      return Promise.resolve({ok: true, status: 200,
                              text: () => Promise.resolve(JSON.stringify({token: 'ctx-token'}))});
    },
  };
  vm.createContext(context);
  vm.runInContext(hostJs, context);
  const deliver = (source, origin, msg) => {
    listeners.forEach((fn) => fn({source, origin, data: msg}));
  };

  deliver({}, 'http://app.test', {type: 'ap-request', id: 1, method: 'context.getToken'});
  deliver(frame.contentWindow, 'http://evil.test',
          {type: 'ap-request', id: 2, method: 'context.getToken'});
  await flush();
  results.hostIgnoredForeign = fetched.length === 0 && posted.length === 0;
  deliver(frame.contentWindow, 'http://app.test',
          {type: 'ap-request', id: 3, method: 'context.getToken'});
  for (let i = 0; i < 5; i += 1) await flush();
  results.hostFetch = fetched[0];
  results.hostReply = posted[0];
  deliver(frame.contentWindow, 'http://app.test',
          {type: 'ap-request', id: 4, method: 'resize', args: ['100%', 640]});
  await flush();
  results.frameHeight = frame.style.height;
  deliver(frame.contentWindow, 'http://app.test', {type: 'ap-request', id: 5, method: 'eval'});
  await flush();
  results.unknownMethod = posted[posted.length - 1];
  deliver(frame.contentWindow, 'http://app.test',
          {type: 'ap-request', id: 6, method: 'user.getCurrentUser'});
  await flush();
  results.user = posted[posted.length - 1];
}

(async () => {
  await apInFrame();
  await hostBridge();
  process.stdout.write(JSON.stringify(results));
})().catch((err) => { process.stderr.write(String(err && err.stack || err)); process.exit(1); });
"""


def test_the_ap_stand_in_and_the_host_bridge(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        unavailable("node not found on PATH: the AP stand-in tests need Node.js")
    for name, text in (("harness.js", HARNESS_JS), ("all.js", ALL_JS), ("host.js", HOST_JS)):
        (tmp_path / name).write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [node, "harness.js", "all.js", "host.js"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)

    # In the app's iframe: AP talks only to the host origin named by xdm_e.
    assert r["autoResize"]["msg"]["method"] == "resize"
    assert r["autoResize"]["msg"]["args"] == ["100%", 322]
    assert r["tokenRequest"]["origin"] == "http://host.test"
    assert r["tokenRequest"]["msg"]["method"] == "context.getToken"
    assert r["ignoredForeign"] is True
    assert r["token"] == "tok"
    assert r["callback"] == "tok"
    assert r["rejected"] == "nope"
    assert r["requestRejects"] == "rejected"

    # In the host page: only the iframe, from the app's origin, is answered.
    assert r["hostIgnoredForeign"] is True
    assert r["hostFetch"]["url"] == "/_emulator/apps/com.example.app/context-token"
    assert r["hostFetch"]["options"]["method"] == "POST"
    assert r["hostFetch"]["options"]["headers"]["Content-Type"] == "application/json"
    assert r["hostReply"] == {
        "msg": {"type": "ap-response", "id": 3, "result": "ctx-token", "error": None},
        "origin": "http://app.test",
    }
    assert r["frameHeight"] == "640px"
    assert r["unknownMethod"]["msg"]["error"] == "AP.eval is not emulated"
    assert r["user"]["msg"]["result"] == {"atlassianAccountId": "557058:abc"}
