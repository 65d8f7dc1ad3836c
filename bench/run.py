"""Side-by-side benchmark: the Django demo (connect_settings) against an ACE 11.5.3 app.

    .venv/bin/python bench/run.py            # about 8 minutes; results in bench/results/

Both apps run on 127.0.0.1 with PostgreSQL; ours under gunicorn with Redis as the tenant
cache, ACE under node (cluster of the same number of processes as the 2 cores). One key
server and one host role (this process) sign installs, page tokens and session tokens for
both; wrk replays the same requests with the same connections and duration against each,
alternating sides every round so that drift of the machine hits both.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness, report, scale
from bench.harness import Req

WORKLOADS = {
    "W1": "page load: GET /configure?...&jwt= (authenticate)",
    "W2": "AJAX save: POST /configure, session token, ~300-byte body",
    "W3": "signed reinstall: POST /installed (RS256)",
    "W4": "read-only JSON: GET /api/settings, session token",
}
SIDES = ("ours", "ace")
KID = "bench/install-key-1"
#: Token lifetime: longer than any run, so tokens minted once stay valid (hosts use 180-900 s).
TOKEN_TTL = 3600
#: Distinct session tokens per tenant, one per second of a run (then they come round again).
ROTATION_SECONDS = 90


def save_body(i: int) -> str:
    # ~300 bytes; team_name changes on every request, so every save is a real write.
    values = {
        "team_name": f"Escalations team {i:06d} (EMEA on-call)",
        "default_priority": ("low", "medium", "high")[i % 3],
        "notify": i % 2 == 0,
        "results_per_page": 10 + i % 90,
        "channels": ["email", "slack"] if i % 2 else ["email", "teams"],
        "project_keys": [
            *("SUP", "OPS", "ENG", "WEB", "API", "DATA", "SEC", "MOBILE", "BILLING", "INFRA"),
            *("QA", "SALES", "LEGAL", "DESIGN", "SUPPORT"),
            f"P{i % 1000:03d}",
        ],
    }
    return json.dumps({"values": values}, separators=(",", ":"))


def build_requests(
    tenants: list[harness.BenchTenant], side: str, base_url: str, private_key: Any
) -> dict[str, list[Req]]:
    # Session tokens change every second, as for a page that swaps in each answer's X-acpt
    # (minted once a second): a token is verified in full once, then sent again within its
    # second. (Replaying one token for the whole run would flatter a memo of verified tokens.)
    sessions = [
        tuple(f"JWT {s}" for s in harness.session_tokens(t, TOKEN_TTL, ROTATION_SECONDS))
        for t in tenants
    ]
    n = len(tenants)
    return {
        "health": [Req("GET", "/health")],
        "W1": [Req("GET", harness.page_path(t, TOKEN_TTL)) for t in tenants],
        "W2": [
            Req("POST", "/configure", sessions[i % n][0], save_body(i), sessions[i % n])
            for i in range(4 * n)
        ],
        "W3": [
            Req(
                "POST",
                "/installed",
                f"JWT {harness.install_token(t, private_key, KID, base_url)}",
                json.dumps(t.payload(), separators=(",", ":")),
            )
            for t in tenants
        ],
        "W4": [Req("GET", "/api/settings", s[0], rotate=s) for s in sessions],
    }


def check_once(base_url: str, requests: dict[str, list[Req]], side: str) -> None:
    """Every workload's first request succeeds on this side, or the run stops here."""
    for name, reqs in requests.items():
        r = reqs[0]
        headers = {"Authorization": r.authorization} if r.authorization else {}
        if r.body:
            headers["Content-Type"] = "application/json"
        status, body = harness.http(
            r.method, base_url + r.path, r.body.encode() if r.body else None, headers
        )
        if status not in (200, 204):
            raise RuntimeError(f"{side} {name}: {status} {body[:300]!r}")


def install_all(base_url: str, tenants: list[harness.BenchTenant], private_key: Any) -> None:
    for t in tenants:
        token = harness.install_token(t, private_key, KID, base_url)
        status, body = harness.http(
            "POST",
            f"{base_url}/installed",
            json.dumps(t.payload()).encode(),
            {"Authorization": f"JWT {token}", "Content-Type": "application/json"},
        )
        if status != 204:
            raise RuntimeError(f"install of {t.client_key} at {base_url}: {status} {body[:300]!r}")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over rounds (each round's figures are kept too)."""
    return {
        "rps": statistics.mean(r["rps"] for r in runs),
        "p50_ms": statistics.mean(r["latency_us"]["p50"] for r in runs) / 1000,
        "p99_ms": statistics.mean(r["latency_us"]["p99"] for r in runs) / 1000,
        "errors": sum(r["error_count"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "rss_mib": max(r["rss_kib"] for r in runs) / 1024,
        "cpu_us_per_request": statistics.mean(r["cpu_us_per_request"] for r in runs),
        "db_cpu_us_per_request": statistics.mean(r["db_cpu_us_per_request"] for r in runs),
        "busy_during": statistics.mean(r["busy_during"] for r in runs),
        "rounds": runs,
    }


def machine() -> dict[str, Any]:
    def version(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    import django

    return {
        "commit": version(["git", "-C", str(harness.ROOT), "rev-parse", "--short", "HEAD"]),
        "cpus": __import__("os").cpu_count(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "node": version(["node", "--version"]),
        "wrk": version(["wrk", "--version"]).split("[")[0].strip() or "wrk",
        "platform": platform.platform(),
    }


def side_by_side(args: argparse.Namespace) -> int:
    workloads = [w for w in args.workloads.split(",") if w]

    harness.ensure_ace_installed()
    tenants = harness.make_tenants(args.tenants)
    results: dict[str, Any] = {
        "machine": machine(),
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "connections": args.connections,
            "tenants": args.tenants,
            "gunicorn": {
                "workers": args.workers,
                "worker_class": args.worker_class,
                "threads": args.threads,
            },
            "ace_workers": args.ace_workers,
            "ace_version": "11.5.3",
            "max_busy": args.max_busy,
        },
        "workloads": {},
        "overhead": {},
    }
    started = time.time()
    with harness.ServiceGroup() as group, harness.key_server(KID) as (key_url, private_key):
        db = {side: harness.recreate_database(f"bench_{side}") for side in SIDES}
        harness.flush_redis()
        ports = {side: harness.free_port() for side in SIDES}
        base = {side: f"http://127.0.0.1:{ports[side]}" for side in SIDES}
        env = harness.django_env(db["ours"], base["ours"], key_url)
        harness.migrate(env)
        services = {
            "ours": group.add(
                harness.gunicorn_service(
                    ports["ours"],
                    env,
                    workers=args.workers,
                    worker_class=args.worker_class,
                    threads=args.threads,
                )
            ).start(),
            "ace": group.add(
                harness.ace_service(ports["ace"], db["ace"], key_url, args.ace_workers)
            ).start(),
        }
        files: dict[str, dict[str, Path]] = {}
        for side in SIDES:
            install_all(base[side], tenants, private_key)
            reqs = build_requests(tenants, side, base[side], private_key)
            check_once(base[side], reqs, side)
            files[side] = {
                name: harness.write_requests(harness.TMP / f"{side}-{name}.tsv", r)
                for name, r in reqs.items()
            }
        print(f"setup done in {time.time() - started:.0f} s", flush=True)

        def measure(side: str, name: str, connections: int, duration: float) -> dict[str, Any]:
            busy = harness.wait_for_quiet(args.max_busy, args.quiet_timeout)
            cpu_before = services[side].cpu_seconds()
            db_before = harness.database_cpu_seconds()
            ticks_before, idle_before = harness.machine_ticks()
            with harness.RssSampler(services[side]) as rss:
                figures = harness.wrk(
                    base[side], files[side][name], connections=connections, duration=duration
                )
            cpu = services[side].cpu_seconds() - cpu_before
            db_cpu = harness.database_cpu_seconds() - db_before
            ticks, idle = harness.machine_ticks()
            requests = max(figures["requests"], 1)
            figures["rss_kib"] = rss.peak_kib
            figures["side"] = side
            figures["busy_before"] = busy
            # CPU per request: what the side itself spent, robust to other load on the machine.
            figures["cpu_us_per_request"] = cpu * 1e6 / requests
            # And what PostgreSQL spent for it: with two cores shared by the app, the database
            # and wrk, the database's share is capacity the app does not get.
            figures["db_cpu_us_per_request"] = db_cpu * 1e6 / requests
            figures["busy_during"] = 1.0 - (idle - idle_before) / max(ticks - ticks_before, 1)
            return figures

        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            w: {s: [] for s in SIDES} for w in workloads
        }
        warmups: dict[str, dict[str, list[dict[str, Any]]]] = {
            w: {s: [] for s in SIDES} for w in workloads
        }
        for rnd in range(args.rounds):
            order = SIDES if rnd % 2 == 0 else SIDES[::-1]
            for name in workloads:
                for side in order:
                    # Each measured run follows a warm-up of the same workload on the same
                    # side: the run measures that workload's steady state, not the previous
                    # workload's after-effects (W2's saves leave every tenant's page to be
                    # rendered again). The warm-ups are reported too, as what those cost.
                    warm = measure(side, name, args.connections, args.warmup)
                    warmups[name][side].append(warm)
                    figures = measure(side, name, args.connections, args.duration)
                    runs[name][side].append(figures)
                    print(
                        f"round {rnd + 1} {name} {side:4}: {figures['rps']:8.0f} req/s  "
                        f"p50 {figures['latency_us']['p50'] / 1000:6.2f} ms  "
                        f"p99 {figures['latency_us']['p99'] / 1000:6.2f} ms  "
                        f"errors {figures['error_count']}  rss {figures['rss_kib'] / 1024:.0f} MiB"
                        f"  cpu/req {figures['cpu_us_per_request']:.0f} µs"
                        f"  db cpu/req {figures['db_cpu_us_per_request']:.0f} µs"
                        f"  busy {figures['busy_during']:.0%}"
                        f"  busy before {figures['busy_before']:.0%}",
                        flush=True,
                    )
        for name in workloads:
            results["workloads"][name] = {
                "description": WORKLOADS[name],
                **{side: summarise(runs[name][side]) for side in SIDES},
                "warmup": {side: summarise(warmups[name][side]) for side in SIDES},
            }

        # Authentication overhead end to end: one connection, W4 against /health, per side.
        overhead_duration = max(args.duration * 2 / 3, 3.0)
        single: dict[str, dict[str, list[dict[str, Any]]]] = {
            s: {"health": [], "W4": []} for s in SIDES
        }
        for rnd in range(args.rounds):
            order = SIDES if rnd % 2 == 0 else SIDES[::-1]
            for side in order:
                for name in ("health", "W4"):
                    single[side][name].append(measure(side, name, 1, overhead_duration))
        for side in SIDES:
            h = summarise(single[side]["health"])
            w = summarise(single[side]["W4"])
            results["overhead"][side] = {
                "health_p50_us": h["p50_ms"] * 1000,
                "w4_p50_us": w["p50_ms"] * 1000,
                "health_rps": h["rps"],
                "w4_rps": w["rps"],
                "w4_minus_health_p50_us": (w["p50_ms"] - h["p50_ms"]) * 1000,
                "w4_minus_health_mean_us": 1e6 / w["rps"] - 1e6 / h["rps"],
            }
        group.stop_all()

    results["elapsed_s"] = time.time() - started
    report.write_side_by_side(results, Path(args.out))
    print(report.side_by_side_markdown(results))
    return 0


def micro(args: argparse.Namespace) -> int:
    """pytest-benchmark over bench/micro on PostgreSQL + Redis; writes micro.json and .md."""
    db = harness.recreate_database("bench_micro")
    harness.flush_redis()
    env = harness.django_env(db, "http://127.0.0.1:8000", "http://127.0.0.1:9")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(harness.BENCH / "micro"),
        "--ds=bench.settings",
        "-q",
        "--benchmark-columns=min,median,mean,rounds",
        "--benchmark-sort=name",
        f"--benchmark-json={out.with_suffix('.json')}",
        f"--benchmark-storage=file://{harness.TMP / 'benchmarks'}",
    ]
    overhead = harness.TMP / "overhead.json"
    overhead.unlink(missing_ok=True)
    env["BENCH_OVERHEAD_OUT"] = str(overhead)
    subprocess.run(argv, cwd=harness.ROOT, env={**__import__("os").environ, **env}, check=True)
    data = json.loads(out.with_suffix(".json").read_text())
    for bench in data["benchmarks"]:
        bench["stats"].pop("data", None)  # every round's time: megabytes, the stats suffice
    data["overhead_interleaved"] = json.loads(overhead.read_text())
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    out.with_suffix(".md").write_text(report.micro_markdown(data))
    print(report.micro_markdown(data))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    sbs = commands.add_parser("side-by-side", help="W1-W4 against ACE (the default)")
    sbs.add_argument("--duration", type=float, default=15.0, help="seconds per measured run")
    sbs.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds before each run")
    sbs.add_argument("--rounds", type=int, default=2, help="measured runs per workload and side")
    sbs.add_argument("--connections", type=int, default=32)
    sbs.add_argument("--tenants", type=int, default=64)
    # Two sync workers, one per core: bench/results/workers.md (bench/workers.py) measured
    # every shape tried; threads only add GIL contention to a CPU-bound app.
    sbs.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    sbs.add_argument("--worker-class", default="sync")
    sbs.add_argument("--threads", type=int, default=1)
    sbs.add_argument("--ace-workers", type=int, default=2, help="node cluster processes")
    sbs.add_argument("--workloads", default="W1,W2,W3,W4")
    sbs.add_argument("--out", default=str(harness.RESULTS / "side_by_side"))
    sbs.add_argument(
        "--max-busy", type=float, default=0.15, help="start a run only below this machine load"
    )
    sbs.add_argument("--quiet-timeout", type=float, default=60.0, help="seconds to wait for it")
    mic = commands.add_parser("micro", help="micro-benchmarks of the hot path")
    mic.add_argument("--out", default=str(harness.RESULTS / "micro"))
    sca = commands.add_parser("scale", help="store and W4 cost at 1k and 100k tenants")
    scale.add_arguments(sca)
    args = parser.parse_args(sys.argv[1:] or ["side-by-side"])
    if args.command == "micro":
        return micro(args)
    if args.command == "scale":
        return scale.run(args)
    return side_by_side(args)


if __name__ == "__main__":
    raise SystemExit(main())
