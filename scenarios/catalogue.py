"""The scenarios the lab reproduces beside the bank's withdrawal, by name, in the order the docs
and the benchmarks show them. Each is defined in its own package (``scenario.py``)."""

from scenarios.definition import Scenario
from scenarios.vouchers.scenario import VOUCHER

SCENARIOS: dict[str, Scenario] = {scenario.name: scenario for scenario in (VOUCHER,)}
