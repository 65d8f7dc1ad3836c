"""Scale: how store get/set, tenant lookup and W4 cost grow from 1 000 to 100 000 tenants.

    .venv/bin/python bench/run.py scale      # about 1.5 minutes; bench/results/scale.{json,md}

Step 1 holds 1 000 tenants with 10 settings each (10 000 rows); step 2 is a second
PostgreSQL database with 100 000 tenants and 1 000 000 rows. Rows are generated inside
PostgreSQL (INSERT ... SELECT over generate_series, copying one tenant made through the ORM),
so seeding takes seconds. The store and tenant operations are measured in this process (Django
configured as the demo, Redis as the tenant cache) on tenants drawn at random from each
step's population, in alternating blocks (one step's database, then the other's, and so on),
so that the machine's drift hits every step alike: a step measured half a minute after another
picked up latency swings of tens of per cent. W4 is measured end to end through gunicorn and
wrk at low concurrency (latency, not throughput), one step after the other.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import harness, report
from bench.harness import Req

SETTINGS_PER_TENANT = 10
TEMPLATE = "scale-template"
SECRET = "scale-shared-secret-" + "y" * 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", default="1000,100000", help="tenant counts, ascending")
    parser.add_argument("--samples", type=int, default=2000, help="operations per measurement")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of W4 per step")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-busy", type=float, default=0.15)
    parser.add_argument("--quiet-timeout", type=float, default=60.0)
    parser.add_argument("--out", default=str(harness.RESULTS / "scale"))


#: Blocks each operation's samples are split into, alternating between the steps.
BLOCKS = 10


@dataclass
class Step:
    tenants: int
    db: str  # the database's name
    url: str
    #: Client keys are distinct per step, so that the steps' entries in the shared tenant
    #: cache (one Redis for all) never meet.
    prefix: str
    rows: int = 0
    seed_seconds: float = 0.0
    keys: list[str] = field(default_factory=list)
    held: dict[str, Any] = field(default_factory=dict)
    ops: dict[str, Any] = field(default_factory=dict)


def _client_key(step: Step, i: int) -> str:
    return f"{step.prefix}{i:07d}"


def _use(step: Step) -> None:
    """Point Django's connection at ``step``'s database, connected before any timing starts."""
    from django.db import connection

    if connection.settings_dict["NAME"] != step.db:
        connection.close()
        connection.settings_dict["NAME"] = step.db
    connection.ensure_connection()


def seed(step: Step) -> float:
    """Add the step's tenants, each with SETTINGS_PER_TENANT rows; seconds taken."""
    from django.db import connection

    from connect_settings.models import AddonSetting, Tenant

    began = time.monotonic()
    table = Tenant._meta.db_table
    columns = [f.column for f in Tenant._meta.concrete_fields if not f.primary_key]
    unique = {f.column for f in Tenant._meta.concrete_fields if f.unique and not f.primary_key}
    if unique != {"client_key"}:
        raise RuntimeError(f"seeding knows only client_key as a unique column, not {unique}")
    selected = [
        f"'{step.prefix}' || lpad(g::text, 7, '0')" if c == "client_key" else f't."{c}"'
        for c in columns
    ]
    quoted = ", ".join(f'"{c}"' for c in columns)
    settings_table = AddonSetting._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{table}" ({quoted}) SELECT {", ".join(selected)} '
            f'FROM "{table}" t, generate_series(%s::integer, %s::integer) g '
            "WHERE t.client_key = %s",
            [0, step.tenants - 1, TEMPLATE],
        )
        # Ten settings per new tenant: the configure page's object and nine small documents.
        cursor.execute(
            f'INSERT INTO "{settings_table}" (tenant_id, key, value, created_at, updated_at) '
            "SELECT t.id, CASE WHEN k = 0 THEN 'appSettings' ELSE 'setting-' || k END, "
            "jsonb_build_object('team_name', 'Team ' || t.id, 'n', k, 'flags', "
            "jsonb_build_array(1, 2, 3)), now(), now() "
            f'FROM "{table}" t, generate_series(0, %s::integer) k '
            "WHERE t.client_key >= %s AND t.client_key <= %s",
            [SETTINGS_PER_TENANT - 1, _client_key(step, 0), _client_key(step, step.tenants - 1)],
        )
        # As after any bulk load: statistics for the planner, and the vacuum done now rather
        # than by autovacuum in the middle of a measurement.
        cursor.execute(f'VACUUM ANALYZE "{table}"')
        cursor.execute(f'VACUUM ANALYZE "{settings_table}"')
    return time.monotonic() - began


def _times(samples: list[str], op: Callable[[str], Any]) -> list[float]:
    times = []
    for client_key in samples:
        start = time.perf_counter_ns()
        op(client_key)
        times.append((time.perf_counter_ns() - start) / 1000)
    return times


def _figures(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "p50_us": statistics.median(times),
        "p99_us": times[min(len(times) - 1, int(len(times) * 0.99))],
        "mean_us": statistics.mean(times),
        "n": len(times),
    }


def measure_store(steps: list[Step], args: argparse.Namespace, rng: random.Random) -> None:
    """Each operation on every step, in alternating blocks; adds ``ops`` to each step."""
    from connect_settings import store
    from connect_settings.tenants import get_tenant

    for step in steps:
        _use(step)
        step.keys = [_client_key(step, rng.randrange(step.tenants)) for _ in range(args.samples)]
        # Warm the shared tenant cache, as a running app has it; views hold the tenant already
        # (request.connect.tenant), which is what "store.get (tenant in hand)" times: the read
        # alone, without the tenant lookup that "store.get" by client key also pays.
        step.held = {key: get_tenant(key) for key in step.keys}
    counter = iter(range(10**9))
    held: dict[str, Any] = {k: t for step in steps for k, t in step.held.items()}
    ops: dict[str, Callable[[str], Any]] = {
        "tenant lookup (cached)": get_tenant,
        "tenant lookup (database)": lambda k: get_tenant(k, fresh=True),
        "store.get": lambda k: store.get("setting-3", k),
        "store.get (tenant in hand)": lambda k: store.get("setting-3", held[k]),
        "store.all (10 rows)": store.all,
        "store.set": lambda k: store.set("setting-5", {"n": next(counter)}, k),
    }
    results: dict[str, dict[str, Any]] = {step.db: {} for step in steps}
    for name, op in ops.items():
        for step in steps:  # warm-up pass
            _use(step)
            _times(step.keys[: args.samples // 10], op)
        busy = harness.wait_for_quiet(args.max_busy, args.quiet_timeout)
        times: dict[str, list[float]] = {step.db: [] for step in steps}
        for block in range(BLOCKS):
            for step in steps if block % 2 == 0 else steps[::-1]:
                _use(step)
                times[step.db] += _times(step.keys[block::BLOCKS], op)
        for step in steps:
            results[step.db][name] = _figures(times[step.db]) | {"busy_before": busy}
    for step in steps:
        step.ops = results[step.db]


def measure_w4(base: str, step: Step, args: argparse.Namespace, rng: random.Random) -> Any:
    population = [
        harness.BenchTenant(_client_key(step, rng.randrange(step.tenants)), SECRET)
        for _ in range(2000)
    ]
    reqs = [
        Req("GET", "/api/settings", f"JWT {harness.session_token(t, 3600)}") for t in population
    ]
    path = harness.write_requests(harness.TMP / f"scale-w4-{step.tenants}.tsv", reqs)
    harness.wrk(base, path, connections=args.connections, duration=3)  # warm the cache
    busy = harness.wait_for_quiet(args.max_busy, args.quiet_timeout)
    f = harness.wrk(base, path, connections=args.connections, duration=args.duration)
    return {
        "p50_us": f["latency_us"]["p50"],
        "p99_us": f["latency_us"]["p99"],
        "mean_us": f["latency_us"]["mean"],
        "n": f["requests"],
        "rps": f["rps"],
        "errors": f["error_count"],
        "busy_before": busy,
    }


def run(args: argparse.Namespace) -> int:
    counts = [int(s) for s in args.steps.split(",")]
    rng = random.Random(6)
    results: dict[str, Any] = {
        "config": vars(args) | {"settings_per_tenant": 10, "interleaved_blocks": BLOCKS},
        "steps": [],
    }
    with harness.ServiceGroup() as group:
        harness.flush_redis()
        port = harness.free_port()
        base = f"http://127.0.0.1:{port}"
        steps = []
        for index, count in enumerate(counts):
            db = f"bench_scale_{index}"
            url = harness.recreate_database(db)
            harness.migrate(harness.django_env(url, base, "http://127.0.0.1:9"))
            steps.append(Step(count, db, url, prefix=f"scale{index}-"))
        os.environ.update(harness.django_env(steps[0].url, base, "http://127.0.0.1:9"))
        import django

        django.setup()
        from django.db import connection

        from connect_settings.testing import make_tenant

        for step in steps:
            _use(step)
            make_tenant(TEMPLATE, SECRET, addon_key=harness.APP_KEY)
            step.seed_seconds = seed(step)
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM connect_settings_addonsetting")
                step.rows = cursor.fetchone()[0]
            print(f"{step.tenants} tenants, {step.rows} rows seeded in {step.seed_seconds:.1f} s")
        harness.flush_redis()
        measure_store(steps, args, rng)
        connection.close()
        for step in steps:
            env = harness.django_env(step.url, base, "http://127.0.0.1:9")
            service = group.add(
                harness.gunicorn_service(
                    port, env, workers=args.workers, worker_class="sync", threads=1
                )
            ).start()
            ops = step.ops | {"W4 end to end": measure_w4(base, step, args, rng)}
            service.stop()
            group.services.remove(service)
            print(f"{step.tenants} tenants, {step.rows} rows:", flush=True)
            for name, f in ops.items():
                print(
                    f"  {name:28} p50 {f['p50_us']:8.0f} µs  p99 {f['p99_us']:8.0f} µs", flush=True
                )
            results["steps"].append(
                {
                    "tenants": step.tenants,
                    "rows": step.rows,
                    "seed_seconds": step.seed_seconds,
                    "ops": ops,
                }
            )
    first, last = results["steps"][0]["ops"], results["steps"][-1]["ops"]
    results["growth_p50"] = {op: last[op]["p50_us"] / first[op]["p50_us"] for op in first}
    report.write_scale(results, Path(args.out))
    print(report.scale_markdown(results))
    return 0
