"""Concurrent configure saves on a file-based SQLite database (the demo's): they queue on the
database write lock and the losers get a conflict, never "database is locked".

The suite's own SQLite database is in memory with a shared cache, whose table locks behave
differently, so this runs the race in a subprocess against a real file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RACE = r"""
import json, sys, threading

import django
from django.conf import settings

django.setup()
# Mirroring, if configured, is not what this race is about.
settings.CONNECT_SETTINGS = {k: v for k, v in settings.CONNECT_SETTINGS.items() if k != "MIRROR"}
from django.core.management import call_command
from django.db import connections

call_command("migrate", verbosity=0)
from connect_settings.configuration import ConfigurationConflict, save_configuration
from connect_settings.testing import make_tenant

tenant = make_tenant()
workers = int(sys.argv[1])
barrier = threading.Barrier(workers, timeout=30)
results = [None] * workers


def run(i):
    try:
        barrier.wait()
        saved = save_configuration(tenant, {"results_per_page": 10 + i}, version=0)
        results[i] = ["ok", saved.version]
    except ConfigurationConflict as err:
        results[i] = ["conflict", err.current["version"]]
    except Exception as err:
        results[i] = ["error", repr(err)]
    finally:
        connections.close_all()


threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=60)
from connect_settings import store
from connect_settings.models import ConfigurationChange

print(json.dumps({
    "results": results,
    "stored": store.get("appSettings", tenant.client_key),
    "versions": list(ConfigurationChange.objects.values_list("version", flat=True)),
}))
"""


def test_concurrent_saves_on_file_sqlite_queue_and_conflict(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'race.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "demo_project.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", RACE, "6"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    outcomes = sorted(kind for kind, _ in report["results"])
    assert outcomes == ["conflict"] * 5 + ["ok"], report["results"]
    winner = next(i for i, (kind, _) in enumerate(report["results"]) if kind == "ok")
    assert report["stored"]["results_per_page"] == 10 + winner
    assert report["versions"] == [1]
