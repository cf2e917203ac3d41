"""The voucher scenario in one process: each strategy, its refusals, the endpoint, the checker,
the commands, and the race held open at the SQL level with no hook in the code."""

import json
import re
import time

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from racelab.racewindow.barrier import armed
from racelab.racewindow.statements import holding
from races.refusals import NotFound, Refused
from scenarios.vouchers.audit import OVERUSES, audit_vouchers
from scenarios.vouchers.forms import CODE_ERROR, STRATEGY_ERROR
from scenarios.vouchers.models import Voucher, VoucherUsage
from scenarios.vouchers.provisioning import LAB_VOUCHER, seed_voucher
from scenarios.vouchers.redemptions import (
    SAFE_STRATEGIES,
    Strategy,
    redeem,
)
from scenarios.vouchers.scenario import VOUCHER
from tests.concurrency import run_concurrently
from tests.helpers import PASSWORD, STARTED_AT
from tests.json_schema import valid

URL = reverse("redeem-voucher")
JOIN_SECONDS = 60
ALL = [pytest.param(strategy, id=strategy.value) for strategy in Strategy]
SAFE = [pytest.param(strategy, id=strategy.value) for strategy in SAFE_STRATEGIES]


@pytest.fixture
def user(db) -> User:
    return User.objects.create_user(username="alice", password=PASSWORD)


@pytest.fixture
def voucher(db) -> Voucher:
    seed_voucher(limit=1)
    return Voucher.objects.get(code=LAB_VOUCHER)


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ALL)
def test_each_strategy_uses_the_voucher_once_and_then_refuses(user, voucher, strategy):
    redemption = redeem(user=user, code=LAB_VOUCHER, strategy=strategy, request_started_at=STARTED_AT)

    (usage,) = VoucherUsage.objects.all()
    assert (redemption.usage_id, redemption.use, redemption.limit) == (usage.pk, 1, 1)
    assert (usage.voucher_id, usage.user_id, usage.strategy) == (voucher.pk, user.pk, strategy.value)
    assert usage.request_started_at == STARTED_AT
    with pytest.raises(Refused, match=f"Voucher {LAB_VOUCHER} is used up: 1 of its 1 use"):
        redeem(user=user, code=LAB_VOUCHER, strategy=strategy, request_started_at=STARTED_AT)
    assert VoucherUsage.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ALL)
def test_a_voucher_of_three_uses_counts_them(user, strategy):
    seed_voucher(limit=3)
    uses = [
        redeem(user=user, code=LAB_VOUCHER, strategy=strategy, request_started_at=STARTED_AT).use
        for _ in range(3)
    ]
    assert uses == [1, 2, 3]
    used_up = f"Voucher {LAB_VOUCHER} is used up: 3 of its 3 use(s) are taken; it was not applied."
    with pytest.raises(Refused, match=f"^{re.escape(used_up)}$"):
        redeem(user=user, code=LAB_VOUCHER, strategy=strategy, request_started_at=STARTED_AT)


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ALL)
def test_an_unknown_code_changes_nothing(user, voucher, strategy, database_unchanged):
    with database_unchanged(), pytest.raises(NotFound, match="There is no voucher 'NOPE'"):
        redeem(user=user, code="NOPE", strategy=strategy, request_started_at=STARTED_AT)


def redeem_concurrently(*, strategy: Strategy, parties: int, window) -> list:
    """``parties`` redemptions of the lab voucher at once, each held in ``window`` as the server
    holds a request; what each got (or raised)."""

    def one() -> object:
        with holding(window=window):
            return redeem(
                user=User.objects.get(username="alice"),
                code=LAB_VOUCHER,
                strategy=strategy,
                request_started_at=timezone.now(),
            )

    return run_concurrently([one] * parties)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parties", [2, 5])
def test_naive_uses_a_single_use_voucher_once_per_request_held_together(user, parties):
    with armed(parties=parties, timeout=5, at=VOUCHER.park_point) as barrier:
        for _ in range(20):
            seed_voucher(limit=1)
            results = redeem_concurrently(strategy=Strategy.NAIVE, parties=parties, window=barrier.window)

            assert not any(isinstance(result, Exception) for result in results), results
            audit = audit_vouchers(code=LAB_VOUCHER)
            assert [(v.kind, v.count) for v in audit.violations] == [(OVERUSES, parties - 1)]
            assert VOUCHER.naive_violations(parties, audit) == parties - 1
        stats = barrier.stats()
    assert (stats.held, stats.windows, stats.timeouts) == (20 * parties, 20, 0)


@pytest.mark.django_db(transaction=True)
def test_the_prediction_counts_the_uses_the_voucher_allows(user):
    # 5 held together at a voucher of 3 uses: all 5 count 0 and use it, 2 beyond its limit.
    seed_voucher(limit=3)
    with armed(parties=5, timeout=5, at=VOUCHER.park_point) as barrier:
        results = redeem_concurrently(strategy=Strategy.NAIVE, parties=5, window=barrier.window)

    assert not any(isinstance(result, Exception) for result in results), results
    audit = audit_vouchers(code=LAB_VOUCHER)
    assert [(v.kind, v.count) for v in audit.violations] == [(OVERUSES, 2)]
    assert VOUCHER.naive_violations(5, audit) == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("strategy", SAFE)
def test_safe_strategies_use_it_once_and_refuse_the_rest_with_a_reason(user, strategy):
    parties, timeout = 3, 0.25
    seed_voucher(limit=1)
    started = time.monotonic()
    with armed(parties=parties, timeout=timeout, at=VOUCHER.park_point) as barrier:
        results = redeem_concurrently(strategy=strategy, parties=parties, window=barrier.window)
    elapsed = time.monotonic() - started

    refused = [result for result in results if isinstance(result, Refused)]
    assert len(results) == parties and len(refused) == parties - 1, results
    assert VoucherUsage.objects.count() == 1
    assert audit_vouchers(code=LAB_VOUCHER).violations == []
    # Each held request waits at most its own window, in turn: far below a hang.
    assert elapsed < parties * (timeout + 1) + 5


def test_the_checker_finds_overuse_on_hand_made_rows_and_nothing_on_clean_ones(user):
    clean = Voucher.objects.create(code="CLEAN", limit=2, remaining=2)
    spent = Voucher.objects.create(code="SPENT", limit=1, remaining=1)
    worst = Voucher.objects.create(code="WORST", limit=1, remaining=1)

    def use(voucher: Voucher, times: int) -> list[int]:
        return [
            VoucherUsage.objects.create(
                voucher=voucher, user=user, strategy="naive", request_started_at=STARTED_AT
            ).pk
            for _ in range(times)
        ]

    use(clean, 2)
    assert audit_vouchers().violations == []
    spent_ids, worst_ids = use(spent, 2), use(worst, 4)

    audit = audit_vouchers()
    (violation,) = audit.violations
    assert (violation.kind, violation.count) == (OVERUSES, 1 + 3)
    assert violation.first == {
        "voucher": "SPENT",
        "limit": 1,
        "usages": 2,
        "usage_ids_beyond_limit": spent_ids[1:],
    }
    assert violation.worst == {
        "voucher": "WORST",
        "limit": 1,
        "usages": 4,
        "usage_ids_beyond_limit": worst_ids[1:],
    }
    assert dict(audit.figures)["usage rows"] == 8
    assert audit.verdict == f"ANOMALIES: {OVERUSES}"
    assert audit_vouchers(code="CLEAN").violations == []


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def post(client, *, strategy: str = "naive", **form):
    return client.post(f"{URL}?strategy={strategy}", form)


@pytest.mark.django_db
def test_the_endpoint_answers_the_use_then_409_with_the_reason(logged_in, voucher):
    applied = post(logged_in, code=LAB_VOUCHER)
    refused = post(logged_in, code=LAB_VOUCHER, strategy="unique_slot")

    assert (applied.status_code, applied.content.decode()) == (
        200,
        f"Voucher {LAB_VOUCHER} applied: use 1 of 1.\n",
    )
    assert refused.status_code == 409 and refused["Content-Type"] == "text/plain"
    assert refused.content.decode().startswith(f"Voucher {LAB_VOUCHER} is used up")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "form", "status", "reason"),
    [
        ("strategy=fast", {"code": LAB_VOUCHER}, 400, STRATEGY_ERROR),
        ("", {}, 400, CODE_ERROR),
        ("", {"code": "two words"}, 400, CODE_ERROR),
        ("", {"code": "x" * 41}, 400, CODE_ERROR),
        ("", {"code": [LAB_VOUCHER, LAB_VOUCHER]}, 400, "code was given 2 times; send it once."),
        ("", {"code": "NOPE"}, 404, "There is no voucher 'NOPE'."),
    ],
)
def test_bad_input_gets_a_reason_and_changes_nothing(
    logged_in, voucher, query, form, status, reason, database_unchanged
):
    with database_unchanged():
        response = logged_in.post(f"{URL}?{query}", form)
    assert response.status_code == status
    assert reason in response.content.decode()


@pytest.mark.django_db
def test_anonymous_and_get_requests_are_refused(client, voucher, database_unchanged):
    with database_unchanged():
        assert post(client, code=LAB_VOUCHER).status_code == 403
        assert client.get(URL).status_code == 405


@pytest.mark.django_db
def test_seed_and_reset_commands(user, capsys):
    call_command("seed_scenario", "voucher", "--limit", "2")
    assert Voucher.objects.filter(code=LAB_VOUCHER, limit=2, remaining=2).exists()
    for strategy in (Strategy.NAIVE, Strategy.CONDITIONAL_UPDATE):
        redeem(user=user, code=LAB_VOUCHER, strategy=strategy, request_started_at=STARTED_AT)

    call_command("reset_scenario", "voucher", "--no-input")

    assert VoucherUsage.objects.count() == 0
    assert Voucher.objects.get(code=LAB_VOUCHER).remaining == 2
    assert "Reset 1 voucher(s): 2 recorded use(s) cleared." in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize("limit", ["0", "-1", "1000001"])
def test_seeding_a_nonsense_limit_is_refused_and_changes_nothing(voucher, limit, database_unchanged):
    with (
        database_unchanged(),
        pytest.raises(CommandError, match="A voucher's limit must be from 1 to 1000000"),
    ):
        call_command("seed_scenario", "voucher", "--limit", limit)


@pytest.mark.django_db
def test_audit_transactions_proves_the_voucher_invariant(user, voucher, capsys):
    call_command("audit_transactions", "--scenario", "voucher", "--fail-on-anomaly")
    assert "Verdict: OK, the invariant holds." in capsys.readouterr().out

    ids = [
        VoucherUsage.objects.create(
            voucher=voucher, user=user, strategy="naive", request_started_at=STARTED_AT
        ).pk
        for _ in range(3)
    ]
    call_command("audit_transactions", "--scenario", "voucher", "--format", "json")
    document = valid(json.loads(capsys.readouterr().out), kind="scenario-audit")
    assert document["verdict"] == f"ANOMALIES: {OVERUSES}"
    assert document["figures"]["uses beyond a limit"] == 2
    (violation,) = document["violations"]
    assert violation["first"]["usage_ids_beyond_limit"] == ids[1:]

    with pytest.raises(CommandError, match="The voucher scenario breaks its invariant") as failed:
        call_command("audit_transactions", "--scenario", "voucher", "--fail-on-anomaly")
    assert failed.value.returncode == 1
    assert "overused vouchers" in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize("option", [("--username", "alice"), ("--timeline", "run.svg")])
def test_audit_transactions_refuses_bank_options_with_a_scenario(voucher, option, database_unchanged):
    with database_unchanged(), pytest.raises(CommandError, match="drop them with --scenario"):
        call_command("audit_transactions", "--scenario", "voucher", *option)
