"""JSON, Markdown and PNG output of the benchmark scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LABELS = {"ours": "connect_settings (Django)", "ace": "ACE 11.5.3 (Node)"}


def _write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def _max_busy(results: dict[str, Any]) -> float:
    runs = [
        r for w in results["workloads"].values() for s in ("ours", "ace") for r in w[s]["rounds"]
    ]
    return max((r.get("busy_before", 0.0) for r in runs), default=0.0)


def _optional(figures: dict[str, Any], name: str, fmt: str = "{:.0f}") -> str:
    """A figure older result files lack."""
    return fmt.format(figures[name]) if name in figures else ""


def side_by_side_markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    g = cfg["gunicorn"]
    lines = [
        "| workload | side | req/s | p50 ms | p99 ms | errors | RSS MiB | CPU µs/req "
        "| DB CPU µs/req | busy |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, w in results["workloads"].items():
        for side in ("ours", "ace"):
            s = w[side]
            lines.append(
                f"| {name} | {LABELS[side]} | {s['rps']:.0f} | {s['p50_ms']:.2f} | "
                f"{s['p99_ms']:.2f} | {s['errors']} | {s['rss_mib']:.0f} | "
                f"{s['cpu_us_per_request']:.0f} | {_optional(s, 'db_cpu_us_per_request')} | "
                f"{_optional(s, 'busy_during', '{:.0%}')} |"
            )
        o, a = w["ours"], w["ace"]
        db_ratio = (
            f"{o['db_cpu_us_per_request'] / a['db_cpu_us_per_request']:.2f}x"
            if o.get("db_cpu_us_per_request") and a.get("db_cpu_us_per_request")
            else ""
        )
        lines.append(
            f"| {name} | **ours / ACE** | **{o['rps'] / a['rps']:.2f}x** | "
            f"{o['p50_ms'] / a['p50_ms']:.2f}x | **{o['p99_ms'] / a['p99_ms']:.2f}x** | | "
            f"{o['rss_mib'] / a['rss_mib']:.2f}x | "
            f"{o['cpu_us_per_request'] / a['cpu_us_per_request']:.2f}x | {db_ratio} | |"
        )
    out = [
        f"{cfg['connections']} connections, {cfg['duration_s']:g} s per run, "
        f"{cfg['rounds']} rounds alternating sides, {cfg['tenants']} tenants; gunicorn "
        f"{g['workers']} x {g['worker_class']}"
        + (f" ({g['threads']} threads)" if g["threads"] > 1 else "")
        + f", node cluster of {cfg['ace_workers']}. Figures are means over rounds "
        "(RSS: the peak of the process group; CPU: user + system time of the side's processes "
        "per request; DB CPU: the same for the PostgreSQL server's processes; busy: how much of "
        "both cores the whole machine used during the run). Each run started once the "
        "machine was at most "
        f"{cfg.get('max_busy', 1):.0%} busy with other work (highest seen: "
        f"{_max_busy(results):.0%}).",
        "",
        *lines,
    ]
    if all("warmup" in w for w in results["workloads"].values()):
        out += [
            "",
            f"Warm-up runs ({cfg['warmup_s']:g} s of each workload just before each measured "
            "run, not counted above; W1's begin with the first page loads after W2's saves, "
            "which render every tenant's page again):",
            "",
            "| workload | side | req/s | p50 ms | p99 ms (mean) | p99 ms (worst) |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for name, w in results["workloads"].items():
            for side in ("ours", "ace"):
                s = w["warmup"][side]
                worst = max(r["latency_us"]["p99"] for r in s["rounds"]) / 1000
                out.append(
                    f"| {name} | {LABELS[side]} | {s['rps']:.0f} | {s['p50_ms']:.2f} | "
                    f"{s['p99_ms']:.2f} | {worst:.2f} |"
                )
    if results.get("overhead"):
        out += [
            "",
            "Authentication overhead end to end (1 connection, p50 of W4 minus p50 of /health;"
            " W4 also reads the settings row):",
            "",
            "| side | /health p50 µs | W4 p50 µs | W4 - /health µs |",
            "|---|---:|---:|---:|",
        ]
        for side, o in results["overhead"].items():
            out.append(
                f"| {LABELS[side]} | {o['health_p50_us']:.0f} | {o['w4_p50_us']:.0f} | "
                f"{o['w4_minus_health_p50_us']:.0f} |"
            )
    return "\n".join(out) + "\n"


def _chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["workloads"])
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    width = 0.38
    colours = {"ours": "#0b6e4f", "ace": "#c1666b"}
    panels = (
        ("rps", "Throughput (req/s, higher is better)", "%.0f"),
        ("p99_ms", "p99 latency (ms, lower is better)", "%.0f"),
        ("cpu_us_per_request", "CPU per request (µs, lower is better)", "%.0f"),
    )
    for ax, (metric, title, fmt) in zip(axes, panels, strict=True):
        for k, side in enumerate(("ours", "ace")):
            xs = [i + (k - 0.5) * width for i in range(len(names))]
            values = [results["workloads"][n][side][metric] for n in names]
            bars = ax.bar(xs, values, width, label=LABELS[side], color=colours[side])
            ax.bar_label(bars, fmt=fmt, fontsize=8)
        ax.set_xticks(range(len(names)), names)
        ax.set_title(title, fontsize=10)
        ax.margins(y=0.15)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=9, frameon=False)
    cfg = results["config"]
    fig.suptitle(
        f"connect_settings vs atlassian-connect-express 11.5.3 - {cfg['connections']} "
        f"connections, {results['machine']['cpus']} cores, loopback",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_side_by_side(results: dict[str, Any], stem: Path) -> None:
    _write_json(results, stem.with_suffix(".json"))
    stem.with_suffix(".md").write_text(side_by_side_markdown(results))
    _chart(results, stem.with_suffix(".png"))


def scale_markdown(results: dict[str, Any]) -> str:
    lines = [
        "| tenants | settings rows | op | p50 µs | p99 µs | mean µs | growth (p50) |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    steps = results["steps"]
    first = steps[0]
    for step in steps:
        for op, figures in step["ops"].items():
            base = first["ops"][op]["p50_us"]
            lines.append(
                f"| {step['tenants']:,} | {step['rows']:,} | {op} | {figures['p50_us']:.0f} | "
                f"{figures['p99_us']:.0f} | {figures['mean_us']:.0f} | "
                f"{figures['p50_us'] / base:.2f}x |"
            )
    return "\n".join(lines) + "\n"


def write_scale(results: dict[str, Any], stem: Path) -> None:
    _write_json(results, stem.with_suffix(".json"))
    stem.with_suffix(".md").write_text(scale_markdown(results))


def micro_figures(data: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``{test name: {median_us, min_us, mean_us}}`` from pytest-benchmark's JSON."""
    return {
        b["name"].removeprefix("test_"): {
            "median_us": b["stats"]["median"] * 1e6,
            "min_us": b["stats"]["min"] * 1e6,
            "mean_us": b["stats"]["mean"] * 1e6,
            "rounds": b["stats"]["rounds"],
        }
        for b in data["benchmarks"]
    }


def micro_derived(figures: dict[str, dict[str, float]]) -> dict[str, float]:
    """Authentication overhead (authenticated empty view minus the unauthenticated one)."""
    med = {name: f["median_us"] for name, f in figures.items()}
    floor = med["floor_hmac_plus_sha256"]
    session = med["request_empty_session_token"] - med["request_empty_unauthenticated"]
    page = med["request_empty_page_token"] - med["request_empty_unauthenticated"]
    return {
        "floor_us": floor,
        "auth_overhead_session_us": session,
        "auth_overhead_page_us": page,
        "auth_overhead_session_x_floor": session / floor,
        "auth_overhead_page_x_floor": page / floor,
        "w4_minus_health_us": med["request_w4_settings"] - med["request_health"],
        # The same work timed directly, outside Django's handler (no subtraction of two
        # whole-request medians, whose noise is larger than the difference).
        "auth_work_session_us": med.get("authenticate_session_token", float("nan")),
        "auth_work_session_x_floor": med.get("authenticate_session_token", float("nan")) / floor,
        "auth_work_session_new_us": med.get("authenticate_session_token_new", float("nan")),
        # The same differences of minimums: on a shared machine the medians of two whole
        # requests pick up unrelated load, the fastest rounds much less.
        "auth_overhead_session_min_us": figures["request_empty_session_token"]["min_us"]
        - figures["request_empty_unauthenticated"]["min_us"],
        "auth_overhead_page_min_us": figures["request_empty_page_token"]["min_us"]
        - figures["request_empty_unauthenticated"]["min_us"],
        "floor_min_us": figures["floor_hmac_plus_sha256"]["min_us"],
    }


def micro_markdown(data: dict[str, Any]) -> str:
    figures = micro_figures(data)
    floor = figures["floor_hmac_plus_sha256"]["median_us"]
    lines = [
        "| benchmark | median µs | min µs | x floor (median) |",
        "|---|---:|---:|---:|",
    ]
    for name, f in figures.items():
        lines.append(
            f"| {name} | {f['median_us']:.1f} | {f['min_us']:.1f} | {f['median_us'] / floor:.1f} |"
        )
    d = micro_derived(figures)
    lines += [
        "",
        f"- floor (one HMAC-SHA256 + one SHA-256): {d['floor_us']:.2f} µs",
        f"- authentication overhead, session token (W4's kind): "
        f"{d['auth_overhead_session_us']:.0f} µs = {d['auth_overhead_session_x_floor']:.0f}x floor",
        f"- the same work timed alone (find, parse, look up, verify, mint), a token sent "
        f"again: {d['auth_work_session_us']:.0f} µs = {d['auth_work_session_x_floor']:.0f}x "
        f"floor; a new token each time: {d['auth_work_session_new_us']:.0f} µs = "
        f"{d['auth_work_session_new_us'] / d['floor_us']:.0f}x floor",
        f"- authentication overhead, page token (W1's kind, with qsh): "
        f"{d['auth_overhead_page_us']:.0f} µs = {d['auth_overhead_page_x_floor']:.0f}x floor",
        f"- the same two overheads from the minimums (less of the machine's other load): "
        f"session {d['auth_overhead_session_min_us']:.0f} µs = "
        f"{d['auth_overhead_session_min_us'] / d['floor_min_us']:.0f}x, page "
        f"{d['auth_overhead_page_min_us']:.0f} µs = "
        f"{d['auth_overhead_page_min_us'] / d['floor_min_us']:.0f}x the floor's minimum",
        f"- W4 minus /health in-process (auth + the settings query): "
        f"{d['w4_minus_health_us']:.0f} µs",
    ]
    interleaved = data.get("overhead_interleaved")
    if interleaved:
        floor_min = d["floor_min_us"]
        lines += [
            "",
            "Authentication overhead, interleaved (empty view; batches of 40 requests of each "
            "kind in turn; median of the per-round differences to the unauthenticated batch):",
            "",
            "| request | median µs | overhead µs | x floor (min) |",
            "|---|---:|---:|---:|",
        ]
        for kind, f in interleaved.items():
            lines.append(
                f"| {kind} | {f['median_us']:.1f} | {f['overhead_median_us']:.1f} | "
                f"{f['overhead_median_us'] / floor_min:.0f} |"
            )
    return "\n".join(lines) + "\n"
