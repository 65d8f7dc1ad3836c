"""Run the resilience suites and print what each tried and what happened.

    python -m resilience.run hostile|load|faults|concurrency [--short] [--json PATH]
    python -m resilience.run all [--short]        # each suite in its own process, then a table

Each suite starts its own stack (a private PostgreSQL cluster where possible, gunicorn, host
emulators) and tears it down, on failure too. Exit status 1 when a suite failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from .report import SuiteResult
from .stack import LOGS, ROOT

SUITES = ("hostile", "load", "faults", "concurrency")


def run_suite(name: str, short: bool) -> SuiteResult:
    import importlib

    module = importlib.import_module(f"resilience.{name}")
    started = time.monotonic()
    result: SuiteResult = module.run(short)
    result.seconds = time.monotonic() - started
    return result


def _plain(value: object) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}: {v}" for k, v in value.items()) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def markdown(results: list[SuiteResult]) -> str:
    """The README table: one row per check."""
    lines = ["| suite | check | tried | passed | figures |", "|---|---|---|---|---|"]
    for result in results:
        for c in result.checks:
            figures = (
                "skipped: " + c.skipped
                if c.skipped
                else "; ".join(
                    f"{k.replace('_', ' ')} {_plain(v)}"
                    for k, v in c.figures.items()
                    if not k.startswith("curve")
                )
            )
            name = c.name.split(": ", 1)[-1]
            lines.append(f"| {result.suite} | {name} | {c.tried} | {c.passed} | {figures} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resilience.run", description=__doc__)
    parser.add_argument("suite", choices=[*SUITES, "all"])
    parser.add_argument("--short", action="store_true", help="the CI-sized version")
    parser.add_argument("--json", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)

    if args.suite != "all":
        result = run_suite(args.suite, args.short)
        print(result.table(), flush=True)
        if args.json:
            result.save(args.json)
        return 0 if result.ok else 1

    results: list[SuiteResult] = []
    for name in SUITES:
        out = LOGS / f"{name}{'-short' if args.short else ''}.json"
        out.unlink(missing_ok=True)
        command = [sys.executable, "-m", "resilience.run", name, "--json", str(out)]
        if args.short:
            command.append("--short")
        subprocess.run(command, cwd=ROOT, check=False)  # noqa: S603 - ourselves
        if out.exists():
            results.append(SuiteResult.from_json(json.loads(out.read_text())))
        else:
            failed = SuiteResult(name, args.short)
            failed.check(f"{name}: the suite crashed").record(False, f"see {LOGS}")
            results.append(failed)
    print()
    print(markdown(results))
    summary = LOGS / f"summary{'-short' if args.short else ''}.md"
    summary.write_text(markdown(results) + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
