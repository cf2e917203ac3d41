"""The races the lab reproduces, the bank's withdrawal first, by name, in the order the docs
and the benchmarks show them. Each is defined in its own package (``scenario.py``)."""

from scenarios.capacity.scenario import CAPACITY
from scenarios.definition import Scenario
from scenarios.get_or_create.scenario import GET_OR_CREATE
from scenarios.payments.scenario import PAYMENT
from scenarios.profiles.scenario import PROFILE
from scenarios.signups.scenario import SIGNUP
from scenarios.transfers.scenario import TRANSFER
from scenarios.vouchers.scenario import VOUCHER
from scenarios.withdrawals.scenario import WITHDRAWAL

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (WITHDRAWAL, VOUCHER, CAPACITY, GET_OR_CREATE, SIGNUP, PAYMENT, PROFILE, TRANSFER)
}
