"""Choose gunicorn's worker count and class by measurement (ours only, same load as run.py).

.venv/bin/python bench/workers.py [--duration 8]   # writes bench/results/workers.{json,md}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.run import KID, build_requests, install_all

#: (workers, class, threads) tried on the 2-core machine.
CONFIGS = [
    (2, "sync", 1),
    (4, "sync", 1),
    (6, "sync", 1),
    (2, "gthread", 1),  # keep-alive without threads: one request at a time, no GIL handoff
    (3, "gthread", 1),
    (2, "gthread", 4),
    (3, "gthread", 4),
    (4, "gthread", 2),
    (6, "gthread", 2),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workloads", default="W1,W2,W4")
    parser.add_argument("--out", default=str(harness.RESULTS / "workers"))
    parser.add_argument(
        "--configs",
        help="only these, as workers:class:threads,... (default: all of CONFIGS)",
    )
    args = parser.parse_args()
    tenants = harness.make_tenants(32)
    rows: list[dict[str, Any]] = []
    with harness.ServiceGroup() as group, harness.key_server(KID) as (key_url, private_key):
        ours = harness.prepare_ours(key_url)
        port, base, env = ours.port, ours.base, ours.env
        files: dict[str, Path] = {}
        configs = CONFIGS
        if args.configs:
            configs = [
                (int(w), c, int(t)) for w, c, t in (x.split(":") for x in args.configs.split(","))
            ]
        for workers, worker_class, threads in configs:
            service = group.add(
                harness.gunicorn_service(
                    port, env, workers=workers, worker_class=worker_class, threads=threads
                )
            ).start()
            if not files:
                install_all(base, tenants, private_key)
                reqs = build_requests(tenants, "ours", base, private_key)
                files = {
                    n: harness.write_requests(harness.TMP / f"workers-{n}.tsv", r)
                    for n, r in reqs.items()
                }
            for name in args.workloads.split(","):
                harness.wrk(base, files[name], connections=args.connections, duration=2)
                busy = harness.wait_for_quiet(0.15, 60)
                with harness.RssSampler(service) as rss:
                    f = harness.wrk(
                        base, files[name], connections=args.connections, duration=args.duration
                    )
                row = {
                    "workers": workers,
                    "class": worker_class,
                    "threads": threads,
                    "workload": name,
                    "rps": f["rps"],
                    "p50_ms": f["latency_us"]["p50"] / 1000,
                    "p99_ms": f["latency_us"]["p99"] / 1000,
                    "errors": f["error_count"],
                    "rss_mib": rss.peak_kib / 1024,
                    "busy_before": busy,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
            service.stop()
            group.services.remove(service)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| workers | class | workload | req/s | p50 ms | p99 ms | errors | RSS MiB |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cls = r["class"] + (f" x{r['threads']} threads" if r["class"] == "gthread" else "")
        lines.append(
            f"| {r['workers']} | {cls} | {r['workload']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['errors']} | {r['rss_mib']:.0f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
