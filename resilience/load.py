"""Load: a bounded mixed workload against gunicorn + PostgreSQL on loopback.

Three emulated sites install the app for real; client threads load pages, save the configure
form (mirrored fields included, delivered by a ``db_worker``), read settings and the
descriptor, while a lifecycle thread disables, enables and reinstalls a fourth site. Passes
with zero 5xx, every accepted save in the history and the final values, the mirror in sync
afterwards (``connect_mirror --check``), and memory that stops growing after warm-up.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .report import SuiteResult
from .stack import Stack, poll
from .workload import Site, Workload, verify_saves

__all__ = ["run"]


def _lifecycle(stack: Stack, site: Any, stop: threading.Event, counts: dict[str, int]) -> None:
    """Disable, enable and (every fifth round) reinstall one site until stopped."""
    rounds = 0
    while not stop.is_set() and rounds < 10_000:
        rounds += 1
        for event in (site.disable, site.enable):
            record = event()
            key = f"{'ok' if record is not None and record.ok else 'failed'}"
            counts[key] = counts.get(key, 0) + 1
        if rounds % 5 == 0:
            try:
                site.reinstall()
                counts["reinstalls"] = counts.get("reinstalls", 0) + 1
            except Exception as err:  # reported as a failure of the check
                counts["failed"] = counts.get("failed", 0) + 1
                counts.setdefault("errors", []).append(str(err)[:200])  # type: ignore[attr-defined]


def _rss_sampler(stack: Stack, samples: list[tuple[float, int]], stop: threading.Event,
                 every: float) -> None:  # fmt: skip
    started = time.monotonic()
    while not stop.wait(every):
        rss = stack.gunicorn_rss_kib() + sum(w.rss_kib() for w in stack.workers)
        samples.append((round(time.monotonic() - started, 1), rss))


def mirror_drained() -> bool:
    from connect_settings.models import MirrorEntry

    return not MirrorEntry.objects.filter(status=MirrorEntry.Status.PENDING).exists()


def run(short: bool) -> SuiteResult:
    result = SuiteResult("load", short)
    seconds = 15.0 if short else 90.0
    with Stack("load", emulators=4, gunicorn_workers=2, gunicorn_threads=4, db_workers=1) as stack:
        for site in stack.sites:
            site.install(stack.url)
        busy, toggled = stack.sites[:3], stack.sites[3]
        sites = [Site(s.client_key, s.shared_secret()) for s in busy]
        workload = Workload(stack.url, sites, threads=6, seconds=seconds)
        stop = threading.Event()
        samples: list[tuple[float, int]] = []
        counts: dict[str, Any] = {}
        helpers = [
            threading.Thread(target=_lifecycle, args=(stack, toggled, stop, counts), daemon=True),
            threading.Thread(
                target=_rss_sampler, args=(stack, samples, stop, 1.0 if short else 3.0), daemon=True
            ),
        ]
        for h in helpers:
            h.start()
        try:
            workload.run()
        finally:
            stop.set()
            for h in helpers:
                h.join(60)

        answers = result.check("load: every answer below 500, no dropped connection")
        answers.expect(workload.five_xx() == 0, f"5xx answers: {dict(workload.statuses)}")
        answers.expect(not workload.errors, f"connection errors: {workload.errors[:5]}")
        answers.figures.update(workload.figures())

        saves = result.check("load: every accepted save stored (history and final value)")
        stack.close_db()
        problems = verify_saves(workload.accepted)
        saves.expect(bool(workload.accepted), "no save was accepted")
        saves.expect(not problems, "; ".join(problems[:5]))
        saves.figures.update(
            accepted=len(workload.accepted),
            conflicts=workload.by_op.get("save", {}).get(409, 0),
        )

        lifecycle = result.check("load: lifecycle events during the load")
        lifecycle.expect(counts.get("failed", 0) == 0, f"failed lifecycle events: {counts}")
        lifecycle.expect(counts.get("ok", 0) > 0, "no lifecycle event was sent")
        lifecycle.figures.update(events=counts.get("ok", 0), reinstalls=counts.get("reinstalls", 0))

        mirror = result.check("load: mirror in sync afterwards (connect_mirror --check)")
        drained = poll(mirror_drained, 90, 0.25)
        mirror.expect(bool(drained), "deliveries still pending 90 s after the load")
        code, output = stack.manage("connect_mirror", "--check")
        mirror.expect(code == 0, f"connect_mirror --check exited {code}: {output[-500:]}")
        from connect_settings.models import MirrorEntry

        mirror.figures["entries"] = MirrorEntry.objects.count()
        mirror.figures["worker_restarts"] = stack.worker_restarts

        memory = result.check("load: memory (RSS of gunicorn + worker) stops growing")
        if len(samples) >= 4:
            values = [kib for _, kib in samples]
            warm = values[len(values) // 4]  # after warm-up: a quarter of the run
            peak, end = max(values), values[-1]
            growth = (end - warm) / warm * 100 if warm else 0.0
            # Python's allocator keeps freed arenas: a bound, not zero growth.
            memory.expect(growth < 25.0, f"RSS grew {growth:.1f}% after warm-up")
            memory.figures.update(
                start_mib=round(values[0] / 1024, 1),
                after_warmup_mib=round(warm / 1024, 1),
                peak_mib=round(peak / 1024, 1),
                end_mib=round(end / 1024, 1),
                growth_after_warmup_pct=round(growth, 1),
                curve_mib=[round(v / 1024) for v in values[:: max(1, len(values) // 12)]],
            )
        else:
            memory.expect(False, f"only {len(samples)} RSS samples")
    return result
