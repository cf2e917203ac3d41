"""What every checker reports of a broken invariant, the bank's and each scenario's alike: one
kind of violation, how many times, what it means, and rows that prove it."""

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Violation:
    kind: str
    count: int
    explanation: str
    first: dict | None = None
    worst: dict | None = None


def verdict(violations: list[Violation]) -> str:
    """What an audit concludes: OK, or the kinds of violation it found."""
    if not violations:
        return "OK"
    return "ANOMALIES: " + ", ".join(violation.kind for violation in violations)
