"""What every scenario's checker answers: the figures it counted and the invariant's violations,
in one shape, so ``audit_transactions --scenario`` and the lab report print any of them."""

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from races.violations import Violation, verdict

T = TypeVar("T")

# The `schema` of a scenario's audit document, as docs/json-schema.json names it: a renamed or
# removed field takes a new version.
SCENARIO_AUDIT_SCHEMA = "scenario-audit/1"


@dataclass(frozen=True)
class ScenarioAudit:
    scenario: str
    invariant: str
    figures: list[tuple[str, object]]
    violations: list[Violation] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return verdict(self.violations)


def scenario_audit_document(audit: ScenarioAudit) -> dict:
    """The audit as plain data: what ``audit_transactions --scenario NAME --format json`` prints,
    and each scenario run of ``splatter --format json`` carries."""
    document = asdict(audit)
    document["figures"] = dict(audit.figures)
    return {"schema": SCENARIO_AUDIT_SCHEMA, **document, "verdict": audit.verdict}


def violated(
    kind: str,
    *,
    broken: Sequence[T],
    count: int,
    explanation: str,
    worst: Callable[[T], Any],
    example: Callable[[T], dict],
) -> list[Violation]:
    """The violation the ``broken`` rows make of a scenario's invariant, ``count`` times, with the
    first of them and the worst (the greatest by ``worst``) as examples: a list of one, or empty
    when nothing is broken. The examples are fetched only then."""
    if not broken:
        return []
    return [
        Violation(
            kind=kind,
            count=count,
            explanation=explanation,
            first=example(broken[0]),
            worst=example(max(broken, key=worst)),
        )
    ]
