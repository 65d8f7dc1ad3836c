"""Run one workload again and again on one gunicorn (ours only), with what could explain a
slow run beside each: PostgreSQL's counters for our tables, the machine's steal time, and a
pure-Python loop timed before and after (the machine's own speed).

``python bench/variance.py --workload W2 --runs 8 --duration 8`` (README, "W2 by round").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.run import KID, build_requests, install_all

_TABLES = """
select relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, autovacuum_count
from pg_stat_user_tables where relname like 'connect_settings_%'
"""
_COMMITS = """
select xact_commit, xact_rollback from pg_stat_database where datname = current_database()
"""


def _counters(db: str) -> tuple[dict[str, tuple[int, ...]], tuple[int, int]]:
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        tables = {row[0]: tuple(row[1:]) for row in conn.execute(_TABLES)}
        commits = conn.execute(_COMMITS).fetchone()
    return tables, (commits[0], commits[1]) if commits else (0, 0)


def _steal() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return values[7], sum(values)


def _loop_ms() -> float:
    started, total = time.perf_counter(), 0
    for k in range(2_000_000):
        total += k * k
    return (time.perf_counter() - started) * 1000


def _run(db: str, service: Any, base: str, path: Path, duration: float) -> str:
    harness.wait_for_quiet(0.15, 60)
    before_ms, steal0 = _loop_ms(), _steal()
    tables0, commits0 = _counters(db)
    cpu0, db_cpu0 = service.cpu_seconds(), harness.database_cpu_seconds()
    result = harness.wrk(base, path, connections=32, duration=duration)
    cpu1, db_cpu1 = service.cpu_seconds(), harness.database_cpu_seconds()
    tables1, commits1 = _counters(db)
    steal1, after_ms = _steal(), _loop_ms()
    n = max(result["requests"], 1)
    parts = [
        f"{result['rps']:.0f} req/s",
        f"CPU/req {1e6 * (cpu1 - cpu0) / n:.0f} µs",
        f"DB CPU/req {1e6 * (db_cpu1 - db_cpu0) / n:.0f} µs",
        f"commits/req {(commits1[0] - commits0[0]) / n:.2f}",
        f"rollbacks {commits1[1] - commits0[1]}",
        f"steal {100 * (steal1[0] - steal0[0]) / max(steal1[1] - steal0[1], 1):.1f}%",
        f"loop {before_ms:.0f}/{after_ms:.0f} ms",
    ]
    for name, now in sorted(tables1.items()):
        was = tables0.get(name, (0, 0, 0, 0))
        inserted, updated, hot = (now[i] - was[i] for i in range(3))
        if inserted or updated:
            short = name.removeprefix("connect_settings_")
            parts.append(
                f"{short}: ins/req {inserted / n:.2f} upd/req {updated / n:.2f} "
                f"HOT {hot / max(updated, 1):.0%} autovacuum {now[3] - was[3]}"
            )
    return " | ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="W2")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    tenants = harness.make_tenants(64)
    with harness.ServiceGroup() as group, harness.key_server(KID) as (key_url, private_key):
        ours = harness.prepare_ours(key_url)
        db, base = ours.db, ours.base
        service = group.add(
            harness.gunicorn_service(
                ours.port, ours.env, workers=args.workers, worker_class="sync", threads=1
            )
        ).start()
        install_all(base, tenants, private_key)
        requests = build_requests(tenants, "ours", base, private_key)[args.workload]
        path = harness.write_requests(harness.TMP / f"variance-{args.workload}.tsv", requests)
        harness.wrk(base, path, connections=32, duration=2)  # warm-up
        for i in range(args.runs):
            print(f"run {i + 1}: {_run(db, service, base, path, args.duration)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
