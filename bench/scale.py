"""Scale: how store get/set, tenant lookup and W4 cost grow from 1 000 to 100 000 tenants.

    .venv/bin/python bench/run.py scale      # about 3 minutes; bench/results/scale.{json,md}

Step 1 holds 1 000 tenants with 10 settings each (10 000 rows); step 2 grows the same
PostgreSQL database to 100 000 tenants and 1 000 000 rows. Rows are generated inside
PostgreSQL (INSERT ... SELECT over generate_series, copying one tenant made through the ORM),
so seeding takes seconds. Each step measures in this process (Django configured as the demo,
Redis as the tenant cache) on tenants drawn at random from the whole population, and W4 end to
end through gunicorn and wrk at low concurrency (latency, not throughput).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
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


def _client_key(i: int) -> str:
    return f"scale-{i:07d}"


def seed(upto: int, start: int) -> float:
    """Add tenants ``start``..``upto - 1``, each with SETTINGS_PER_TENANT rows; seconds taken."""
    from django.db import connection

    from connect_settings.models import AddonSetting, Tenant

    began = time.monotonic()
    table = Tenant._meta.db_table
    columns = [f.column for f in Tenant._meta.concrete_fields if not f.primary_key]
    unique = {f.column for f in Tenant._meta.concrete_fields if f.unique and not f.primary_key}
    if unique != {"client_key"}:
        raise RuntimeError(f"seeding knows only client_key as a unique column, not {unique}")
    selected = [
        "'scale-' || lpad(g::text, 7, '0')" if c == "client_key" else f't."{c}"' for c in columns
    ]
    quoted = ", ".join(f'"{c}"' for c in columns)
    settings_table = AddonSetting._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{table}" ({quoted}) SELECT {", ".join(selected)} '
            f'FROM "{table}" t, generate_series(%s::integer, %s::integer) g '
            "WHERE t.client_key = %s",
            [start, upto - 1, TEMPLATE],
        )
        # Ten settings per new tenant: the configure page's object and nine small documents.
        cursor.execute(
            f'INSERT INTO "{settings_table}" (tenant_id, key, value, created_at, updated_at) '
            "SELECT t.id, CASE WHEN k = 0 THEN 'appSettings' ELSE 'setting-' || k END, "
            "jsonb_build_object('team_name', 'Team ' || t.id, 'n', k, 'flags', "
            "jsonb_build_array(1, 2, 3)), now(), now() "
            f'FROM "{table}" t, generate_series(0, %s::integer) k '
            "WHERE t.client_key >= %s AND t.client_key <= %s",
            [SETTINGS_PER_TENANT - 1, _client_key(start), _client_key(upto - 1)],
        )
        # As after any bulk load: statistics for the planner, and the vacuum done now rather
        # than by autovacuum in the middle of a measurement.
        cursor.execute(f'VACUUM ANALYZE "{table}"')
        cursor.execute(f'VACUUM ANALYZE "{settings_table}"')
    return time.monotonic() - began


def _timed(samples: list[str], op: Callable[[str], Any]) -> dict[str, float]:
    times = []
    for client_key in samples:
        start = time.perf_counter_ns()
        op(client_key)
        times.append((time.perf_counter_ns() - start) / 1000)
    times.sort()
    return {
        "p50_us": statistics.median(times),
        "p99_us": times[min(len(times) - 1, int(len(times) * 0.99))],
        "mean_us": statistics.mean(times),
        "n": len(times),
    }


def measure_store(
    tenants: int, args: argparse.Namespace, rng: random.Random
) -> dict[str, dict[str, float]]:
    from connect_settings import store
    from connect_settings.tenants import get_tenant

    samples = args.samples
    keys = [_client_key(rng.randrange(tenants)) for _ in range(samples)]
    # Warm the shared tenant cache, as a running app has it; views hold the tenant already
    # (request.connect.tenant), which is what "store.get (tenant in hand)" times: the read
    # alone, without the tenant lookup that "store.get" by client key also pays.
    held = {key: get_tenant(key) for key in keys}
    counter = iter(range(10**9))
    ops: dict[str, Callable[[str], Any]] = {
        "tenant lookup (cached)": get_tenant,
        "tenant lookup (database)": lambda k: get_tenant(k, fresh=True),
        "store.get": lambda k: store.get("setting-3", k),
        "store.get (tenant in hand)": lambda k: store.get("setting-3", held[k]),
        "store.all (10 rows)": store.all,
        "store.set": lambda k: store.set("setting-5", {"n": next(counter)}, k),
    }
    results = {}
    for name, op in ops.items():
        _timed(keys[: samples // 10], op)  # warm-up pass
        busy = harness.wait_for_quiet(args.max_busy, args.quiet_timeout)
        results[name] = _timed(keys, op) | {"busy_before": busy}
    return results


def measure_w4(base: str, tenants: int, args: argparse.Namespace, rng: random.Random) -> Any:
    population = [
        harness.BenchTenant(_client_key(rng.randrange(tenants)), SECRET) for _ in range(2000)
    ]
    reqs = [
        Req("GET", "/api/settings", f"JWT {harness.session_token(t, 3600)}") for t in population
    ]
    path = harness.write_requests(harness.TMP / f"scale-w4-{tenants}.tsv", reqs)
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
    steps = [int(s) for s in args.steps.split(",")]
    rng = random.Random(6)
    results: dict[str, Any] = {"config": vars(args) | {"settings_per_tenant": 10}, "steps": []}
    with harness.ServiceGroup() as group:
        db = harness.recreate_database("bench_scale")
        harness.flush_redis()
        port = harness.free_port()
        base = f"http://127.0.0.1:{port}"
        env = harness.django_env(db, base, "http://127.0.0.1:9")
        harness.migrate(env)
        os.environ.update(env)
        import django

        django.setup()
        from django.db import connection

        from connect_settings.testing import make_tenant

        make_tenant(TEMPLATE, SECRET, addon_key=harness.APP_KEY)
        seeded = 0
        for count in steps:
            seconds = seed(count, seeded)
            seeded = count
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM connect_settings_addonsetting")
                rows = cursor.fetchone()[0]
            harness.flush_redis()
            print(f"{count} tenants, {rows} rows seeded in {seconds:.1f} s", flush=True)
            ops = measure_store(count, args, rng)
            service = group.add(
                harness.gunicorn_service(
                    port, env, workers=args.workers, worker_class="sync", threads=1
                )
            ).start()
            ops["W4 end to end"] = measure_w4(base, count, args, rng)
            service.stop()
            group.services.remove(service)
            for name, f in ops.items():
                print(
                    f"  {name:28} p50 {f['p50_us']:8.0f} µs  p99 {f['p99_us']:8.0f} µs", flush=True
                )
            results["steps"].append(
                {"tenants": count, "rows": rows, "seed_seconds": seconds, "ops": ops}
            )
        connection.close()
    first, last = results["steps"][0]["ops"], results["steps"][-1]["ops"]
    results["growth_p50"] = {op: last[op]["p50_us"] / first[op]["p50_us"] for op in first}
    report.write_scale(results, Path(args.out))
    print(report.scale_markdown(results))
    return 0
