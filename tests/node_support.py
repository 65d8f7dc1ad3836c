"""Running Atlassian's own JS library, ``atlassian-jwt`` (what atlassian-connect-express uses),
as an independent oracle for the JWT code.

One ``node`` process handles a whole batch: the request goes in as JSON on stdin, the results
come back as JSON on stdout, one ``{"ok": ...}`` or ``{"error": "..."}`` per item.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

#: ``npm view atlassian-jwt version`` when these tests were written.
ATLASSIAN_JWT_VERSION = "2.0.3"

NPM_INSTALL_TIMEOUT = 300
NODE_TIMEOUT = 120

RUNNER_JS = r"""
'use strict';
const fs = require('fs');
const path = require('path');
const jwt = require(path.join(__dirname, 'node_modules', 'atlassian-jwt'));

function canonical(item) {
  const req = jwt.fromMethodAndUrl(item.method, item.url);
  return {
    canonical: jwt.createCanonicalRequest(req, false, item.baseUrl),
    qsh: jwt.createQueryStringHash(req, false, item.baseUrl),
  };
}

const ops = {
  // {method, url, baseUrl?} -> {canonical, qsh}, the way ACE sees an incoming request.
  canonical: canonical,
  // {method, url, baseUrl?, claims, secret} -> a token whose qsh atlassian-jwt computed.
  sign_request: (item) => {
    const payload = Object.assign({}, item.claims, {qsh: canonical(item).qsh});
    return jwt.encodeSymmetric(payload, item.secret, jwt.SymmetricAlgorithm.HS256);
  },
  // {payload, secret} -> token
  encode: (item) => jwt.encodeSymmetric(item.payload, item.secret, jwt.SymmetricAlgorithm.HS256),
  // {token, secret} -> claims (throws on a bad signature or algorithm)
  decode: (item) => jwt.decodeSymmetric(item.token, item.secret, jwt.SymmetricAlgorithm.HS256),
  version: () => jwt.version,
};

const request = JSON.parse(fs.readFileSync(0, 'utf8'));
const op = ops[request.op];
if (!op) {
  process.stderr.write('unknown op: ' + request.op + '\n');
  process.exit(2);
}
const results = request.items.map((item) => {
  try {
    return {ok: op(item)};
  } catch (err) {
    return {error: String((err && err.message) || err)};
  }
});
process.stdout.write(JSON.stringify(results));
"""


def unavailable(reason: str) -> NoReturn:
    """Skip locally; under CI (``CI=true``) a missing tool is a failure, never a skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the node interop tests must run)", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class AtlassianJwt:
    """An installed copy of atlassian-jwt plus the batch runner script."""

    directory: Path
    node: str

    @property
    def script(self) -> Path:
        return self.directory / "runner.js"

    def run(self, op: str, items: list[Any]) -> list[dict[str, Any]]:
        """Run ``op`` over every item in one node process; one result dict per item."""
        proc = subprocess.run(
            [self.node, str(self.script)],
            input=json.dumps({"op": op, "items": items}),
            capture_output=True,
            text=True,
            encoding="utf-8",
            cwd=self.directory,
            timeout=NODE_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"node {op} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        results = json.loads(proc.stdout)
        assert isinstance(results, list)
        assert len(results) == len(items)
        return results

    def run_ok(self, op: str, items: list[Any]) -> list[Any]:
        """Like :meth:`run`, but every item must succeed; returns the bare values."""
        results = self.run(op, items)
        errors = [(i, r["error"]) for i, r in enumerate(results) if "error" in r]
        assert not errors, f"atlassian-jwt {op} raised for {len(errors)} item(s): {errors[:5]}"
        return [r["ok"] for r in results]


def install_atlassian_jwt(directory: Path, version: str = ATLASSIAN_JWT_VERSION) -> AtlassianJwt:
    """``npm install`` atlassian-jwt@``version`` into ``directory`` and write the runner."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if not path)
        unavailable(f"{missing} not found on PATH: the atlassian-jwt interop tests need Node.js")
    # A package.json of its own keeps npm from climbing to an enclosing project.
    (directory / "package.json").write_text(
        json.dumps({"name": "connect-settings-jwt-interop", "private": True}), encoding="utf-8"
    )
    try:
        proc = subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--silent",
                "--no-package-lock",
                f"atlassian-jwt@{version}",
            ],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=NPM_INSTALL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        unavailable(f"npm install atlassian-jwt@{version} took over {NPM_INSTALL_TIMEOUT} s")
    if proc.returncode != 0:
        unavailable(
            f"npm install atlassian-jwt@{version} failed ({proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-1000:]}"
        )
    manifest = directory / "node_modules" / "atlassian-jwt" / "package.json"
    installed = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    if installed != version:
        raise RuntimeError(f"npm installed atlassian-jwt {installed}, not {version}")
    (directory / "runner.js").write_text(RUNNER_JS, encoding="utf-8")
    return AtlassianJwt(directory=directory, node=node)
