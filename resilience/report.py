"""What a suite tried, what passed, and its figures: printed as a table and saved as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Check", "SuiteResult"]


@dataclass
class Check:
    """One scenario (or one family of attempts) of a suite."""

    name: str
    tried: int = 0
    passed: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    skipped: str = ""

    def record(self, ok: bool, failure: str = "") -> bool:
        self.tried += 1
        if ok:
            self.passed += 1
        elif len(self.failures) < 50:  # enough to diagnose, bounded for huge runs
            self.failures.append(failure)
        return ok

    def expect(self, ok: bool, failure: str) -> bool:
        """An invariant that must hold: counted as one attempt."""
        return self.record(ok, failure)

    @property
    def ok(self) -> bool:
        return not self.skipped and self.tried > 0 and self.passed == self.tried


@dataclass
class SuiteResult:
    suite: str
    short: bool
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    def check(self, name: str) -> Check:
        check = Check(name)
        self.checks.append(check)
        return check

    @property
    def ok(self) -> bool:
        return all(c.ok or c.skipped for c in self.checks) and any(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SuiteResult:
        checks = [Check(**{k: v for k, v in c.items()}) for c in data["checks"]]
        return cls(data["suite"], data["short"], checks, data.get("seconds", 0.0))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")

    def table(self) -> str:
        rows = [("check", "tried", "passed", "figures")]
        for c in self.checks:
            figures = "; ".join(f"{k}={_fmt(v)}" for k, v in c.figures.items())
            if c.skipped:
                figures = f"SKIPPED: {c.skipped}"
            rows.append((c.name, str(c.tried), str(c.passed), figures))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [
            f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows
        ]
        status = "PASSED" if self.ok else "FAILED"
        mode = "short" if self.short else "full"
        head = f"== {self.suite} ({mode}): {status} in {self.seconds:.1f} s"
        out = [head, *lines]
        for c in self.checks:
            for failure in c.failures[:10]:
                out.append(f"  FAIL {c.name}: {failure}")
        return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, list) and len(value) > 12:
        return "[" + ", ".join(_fmt(v) for v in value[:12]) + ", ...]"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)
