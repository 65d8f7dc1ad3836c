"""atlassian-connect-express (ACE) itself, from npm, writing its sequelize store.

The tests install ACE with the database drivers its sequelize adapter loads (``sqlite3``,
``pg``) into a temporary folder, then drive ACE's own store API (``lib/store``: the adapter
an ACE app gets as ``addon.settings``) from one ``node`` process per batch of operations:
JSON in on stdin, one result per operation out on stdout (the node_support pattern).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.node_support import NODE_TIMEOUT, NPM_INSTALL_TIMEOUT, unavailable

#: Exact versions, so that the store schema under test is ACE 11.5.3's.
ACE_VERSION = "11.5.3"
#: The drivers sequelize loads for ``dialect: 'sqlite'`` and for a ``postgres://`` url.
SQLITE3_VERSION = "5.1.7"
PG_VERSION = "8.23.1"

#: The PostgreSQL server for the scratch database (the README's TEST_POSTGRES_URL).
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")

STORE_JS = r"""
'use strict';
const fs = require('fs');
const path = require('path');
const ace = path.join(__dirname, 'node_modules', 'atlassian-connect-express');
const stores = require(path.join(ace, 'lib', 'store'));

const quiet = {info() {}, warn() {}, error() {}};
const request = JSON.parse(fs.readFileSync(0, 'utf8'));

(async () => {
  // What `new Addon(...)` does with the "store" entry of an ACE app's config.json.
  const store = stores(quiet, Object.assign({adapter: 'sequelize', logging: false}, request.store));
  const model = await store.connectionPromise;
  await store.installationMappingPromise;
  await store.forgeSettingsPromise;
  const ops = {
    // ACE's POST /installed handler: addon.settings.saveInstallation(req.body, clientKey).
    install: (op) => store.saveInstallation(op.payload, op.payload.clientKey),
    set: (op) => store.set(op.key, op.value, op.clientKey),
    get: (op) => store.get(op.key, op.clientKey),
    del: (op) => store.del(op.key, op.clientKey),
    // A second row for an existing (clientKey, key): what two racing findOrCreate calls
    // leave behind, since ACE's (clientKey, key) index is not unique.
    insert_duplicate: async (op) => {
      const row = await model.create({clientKey: op.clientKey, key: op.key, val: op.value});
      return row.id;
    },
  };
  const results = [];
  for (const op of request.ops) {
    const fn = ops[op.op];
    if (!fn) throw new Error('unknown op: ' + op.op);
    const result = await fn(op);
    results.push(result === undefined ? null : result);
  }
  await store.sequelize.close();
  process.stdout.write(JSON.stringify(results));
})().catch((err) => {
  process.stderr.write(String((err && err.stack) || err));
  process.exit(1);
});
"""


@dataclass(frozen=True)
class AceStore:
    """An installed ACE plus the runner; ``sqlite_error`` says why SQLite is unusable."""

    directory: Path
    node: str
    versions: dict[str, str]
    sqlite_error: str | None = None

    def run(self, store: dict[str, Any], ops: list[dict[str, Any]]) -> list[Any]:
        """Run ``ops`` through ACE's store built from ``store`` (ACE's config.json options)."""
        proc = subprocess.run(
            [self.node, str(self.directory / "store.js")],
            input=json.dumps({"store": store, "ops": ops}),
            capture_output=True,
            text=True,
            encoding="utf-8",
            cwd=self.directory,
            timeout=NODE_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"ACE store script failed ({proc.returncode}): {proc.stderr[-3000:]}"
            )
        results = json.loads(proc.stdout)
        assert isinstance(results, list) and len(results) == len(ops)
        return results


def _npm_install(npm: str, directory: Path, *packages: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent", "--no-package-lock", *packages],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=NPM_INSTALL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        unavailable(f"npm install {' '.join(packages)} took over {NPM_INSTALL_TIMEOUT} s")


def _installed_version(directory: Path, package: str) -> str:
    manifest = directory / "node_modules" / package / "package.json"
    return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])


def install_ace(directory: Path) -> AceStore:
    """``npm install`` ACE and ``pg``, then ``sqlite3`` (a native build that may fail alone)."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if not path)
        unavailable(f"{missing} not found on PATH: the ACE import tests need Node.js")
    if _already_installed(directory):
        return _store(directory, node, None)
    # A package.json of its own keeps npm from climbing to an enclosing project.
    (directory / "package.json").write_text(
        json.dumps({"name": "connect-settings-ace-import", "private": True}), encoding="utf-8"
    )
    proc = _npm_install(
        npm, directory, f"atlassian-connect-express@{ACE_VERSION}", f"pg@{PG_VERSION}"
    )
    if proc.returncode != 0:
        unavailable(
            f"npm install atlassian-connect-express@{ACE_VERSION} failed ({proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-1000:]}"
        )
    # sqlite3 is a native addon: prebuilt binaries are downloaded when reachable, otherwise
    # node-gyp compiles it (about a minute); a failure only rules out the SQLite variant.
    sqlite_error = None
    proc = _npm_install(npm, directory, f"sqlite3@{SQLITE3_VERSION}")
    if proc.returncode != 0:
        sqlite_error = (
            f"npm install sqlite3@{SQLITE3_VERSION} failed ({proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-1000:]}"
        )
    return _store(directory, node, sqlite_error)


def _already_installed(directory: Path) -> bool:
    """A kept install (``CONNECT_TEST_NPM_DIR``) with the pinned versions needs no npm run."""
    wanted = {
        "atlassian-connect-express": ACE_VERSION,
        "pg": PG_VERSION,
        "sqlite3": SQLITE3_VERSION,
    }
    try:
        return all(_installed_version(directory, name) == v for name, v in wanted.items())
    except (OSError, ValueError, KeyError):
        return False


def _store(directory: Path, node: str, sqlite_error: str | None) -> AceStore:
    versions = {
        name: _installed_version(directory, name)
        for name in ("atlassian-connect-express", "sequelize", "pg")
    }
    if sqlite_error is None:
        versions["sqlite3"] = _installed_version(directory, "sqlite3")
    if versions["atlassian-connect-express"] != ACE_VERSION:
        raise RuntimeError(f"npm installed ACE {versions['atlassian-connect-express']}")
    (directory / "store.js").write_text(STORE_JS, encoding="utf-8")
    return AceStore(directory=directory, node=node, versions=versions, sqlite_error=sqlite_error)


def postgres_unavailable(reason: str) -> NoReturn:
    """Skip locally; under CI (``CI=true``) PostgreSQL is part of the contract: fail."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the PostgreSQL import test must run)", pytrace=False)
    pytest.skip(reason)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextmanager
def scratch_postgres_database(name: str) -> Iterator[str]:
    """A new, empty database ``name`` on the test PostgreSQL server; dropped afterwards."""
    import psycopg
    from psycopg import sql

    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        server = urlsplit(POSTGRES_URL)
        postgres_unavailable(
            f"PostgreSQL unreachable at {server.hostname}:{server.port or 5432}: {err}"
        )
    ident = sql.Identifier(name)
    try:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))
        yield _with_database(POSTGRES_URL, name)
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        admin.close()
