"""Profile one workload in-process: the Django app's WSGI handler called directly, no server.

    .venv/bin/python bench/profile_hotpath.py W4 [--requests 3000] [--tool pyinstrument|cprofile]

Sets up a scratch PostgreSQL database (``bench_profile``) and the Redis tenant cache as the
side-by-side run does, installs a few tenants through the real signed ``/installed``, warms
the process, then profiles ``--requests`` requests of the workload. Prints a text profile and
the mean wall and CPU time per request. ``BENCH_PROFILE_DB`` and ``BENCH_REDIS_URL`` choose another
database and Redis db, so that two profiles can run at once; ``BENCH_PROFILE_SORT=tottime``
orders cProfile's table by own time, ``BENCH_PROFILE_CALLERS=<pattern>`` adds who called the
functions matching it, and ``BENCH_PROFILE_ALL=1`` shows pyinstrument's library frames too.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.harness import Req
from bench.inprocess import Caller

KID = "bench/install-key-1"
BASE_URL = "http://127.0.0.1:8000"


def setup(tenant_count: int, key_url: str) -> dict[str, Any]:
    db = harness.recreate_database(os.environ.get("BENCH_PROFILE_DB", "bench_profile"))
    harness.flush_redis()
    os.environ.update(harness.django_env(db, BASE_URL, key_url))
    harness.migrate(harness.django_env(db, BASE_URL, key_url))
    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application

    return {"app": get_wsgi_application()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=["health", "W1", "W2", "W3", "W4"])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--tenants", type=int, default=16)
    parser.add_argument(
        "--tool", choices=["pyinstrument", "cprofile", "none"], default="pyinstrument"
    )
    args = parser.parse_args()

    from bench.run import build_requests

    with harness.key_server(KID) as (key_url, private_key):
        call = Caller(setup(args.tenants, key_url)["app"])
        tenants = harness.make_tenants(args.tenants)
        import json

        for t in tenants:
            token = harness.install_token(t, private_key, KID, BASE_URL)
            call(
                Req(
                    "POST",
                    "/installed",
                    f"JWT {token}",
                    json.dumps(t.payload(), separators=(",", ":")),
                )
            )
        reqs = build_requests(tenants, "ours", BASE_URL, private_key)[args.workload]
        for i in range(min(500, args.requests)):  # warm: caches, connections, templates
            call(reqs[i % len(reqs)])

        cpu: list[float] = []

        def run() -> float:
            cpu.append(time.process_time())
            start = time.perf_counter()
            for i in range(args.requests):
                call(reqs[i % len(reqs)])
            elapsed = time.perf_counter() - start
            cpu.append(time.process_time())
            return elapsed

        if args.tool == "pyinstrument":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002)
            profiler.start()
            elapsed = run()
            profiler.stop()
            show_all = os.environ.get("BENCH_PROFILE_ALL") == "1"  # Django's frames too
            print(profiler.output_text(unicode=True, color=False, show_all=show_all))
        elif args.tool == "cprofile":
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            elapsed = run()
            prof.disable()
            order = os.environ.get("BENCH_PROFILE_SORT", "cumulative")  # or tottime
            stats = pstats.Stats(prof).sort_stats(order)
            stats.print_stats(45)
            if callers := os.environ.get("BENCH_PROFILE_CALLERS"):  # a function name's pattern
                stats.print_callers(callers)
        else:
            elapsed = run()
        per_request = 1e6 / args.requests
        print(
            f"{args.workload}: {elapsed * per_request:.0f} µs per request in-process"
            f" ({(cpu[1] - cpu[0]) * per_request:.0f} µs of it CPU)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
