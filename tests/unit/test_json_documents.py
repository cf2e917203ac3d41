"""Every JSON document the commands print, built from real runs and audits, against
docs/json-schema.json: one vocabulary (concurrency; ok / refused / indeterminate; runs) and a
`schema` in each, and a renamed or missing field is caught."""

import copy
import importlib
import json
import re
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from jsonschema import ValidationError

from accounts.audit import AnomalyKind, audit_account, audit_document
from accounts.models import Run
from experiment import tables
from experiment.race_runs import scenario_requests
from experiment.summaries import SweepReport, TrialOutcome, summarise_scenario, summarise_trials
from racelab.loadgen.burst import BurstRun, RequestRecord
from racelab.loadgen.drivers import DriverName, LoadResult
from racelab.loadgen.outcomes import Outcome
from racelab.racewindow.barrier import BarrierStats
from racelab.runs.pipeline import Fired, RaceRun
from scenarios.audit import scenario_audit_document
from scenarios.vouchers.models import Voucher, VoucherUsage
from scenarios.vouchers.provisioning import LAB_VOUCHER, seed_voucher
from scenarios.vouchers.scenario import VOUCHER
from tests.helpers import PASSWORD, STARTED_AT
from tests.json_schema import SCHEMA, valid

STORED_AUDITS = importlib.import_module("labreport.migrations.0002_audit_schema")


def _trial(*, strategy: str, level: int, trial: int, ok: int, refused: int, lost: int) -> TrialOutcome:
    return TrialOutcome(
        driver=DriverName.BURST,
        strategy=strategy,
        concurrency=level,
        trial=trial,
        ok=ok,
        refused=refused,
        indeterminate=level - ok - refused,
        server_errors=0,
        lost=lost,
        anomalies=[AnomalyKind.LOST_WITHDRAWALS, AnomalyKind.LOST_UPDATES] if lost else [],
        spread_ms=0.4 if ok > 1 else None,
        first_gap_ms=0.1 if ok > 1 else None,
    )


@pytest.fixture
def sweep() -> dict:
    """Two -c levels of naive and locking trials under an armed window, as a sweep reports them."""
    outcomes = [
        _trial(strategy="naive", level=2, trial=1, ok=2, refused=0, lost=1),
        _trial(strategy="locking", level=2, trial=1, ok=2, refused=0, lost=0),
        _trial(strategy="naive", level=3, trial=1, ok=3, refused=0, lost=2),
        _trial(strategy="locking", level=3, trial=1, ok=1, refused=1, lost=0),
    ]
    report = SweepReport(
        summaries=summarise_trials(outcomes),
        outcomes=outcomes,
        barriers={
            2: BarrierStats(held=4, windows=2, timeouts=0, serialized=0),
            3: BarrierStats(held=5, windows=2, timeouts=1, serialized=0),
        },
    )
    return json.loads(json.dumps(tables.sweep_document(report)))


@pytest.fixture
def overused_voucher(db) -> None:
    """The voucher of one use, taken twice: what two naive redemptions held together leave."""
    seed_voucher(limit=1)
    voucher = Voucher.objects.get(code=LAB_VOUCHER)
    user = User.objects.create_user(username="alice", password=PASSWORD)
    for _ in range(2):
        VoucherUsage.objects.create(
            voucher=voucher, user=user, strategy="naive", request_started_at=STARTED_AT
        )


def _record(index: int, *, outcome: Outcome, status: int | None) -> RequestRecord:
    return RequestRecord(
        burst=0,
        index=index,
        username="alice",
        outcome=outcome,
        status=status,
        answer=None,
        primed_at=1.0,
        sent_at=1.1,
        received_at=None if status is None else 1.2,
        error=None if status is not None else "no answer within 30 s",
    )


def voucher_run(*answers: tuple[Outcome, int | None]) -> RaceRun:
    """One naive burst at the voucher that got these answers, with the voucher's audit now."""
    posts = scenario_requests(scenario=VOUCHER, strategy="naive", concurrency=len(answers))
    burst = BurstRun(
        posts=posts,
        burst_size=len(answers),
        records=[
            _record(index, outcome=outcome, status=status) for index, (outcome, status) in enumerate(answers)
        ],
        started_at=1.0,
        finished_at=1.3,
    )
    load = LoadResult(
        driver=DriverName.BURST,
        posts=posts,
        requests=len(answers),
        outcomes={"alice": burst.outcomes(username="alice")},
        server_errors=burst.server_errors,
        report=burst,
        argvs=[],
    )
    return RaceRun(
        trial=1,
        fired=Fired(
            load=load,
            level=len(answers),
            strategy="naive",
            run_token=None,
            started_at=STARTED_AT,
            elapsed=0.3,
        ),
        judgement=VOUCHER.audit(),
        barrier=BarrierStats(held=len(answers), windows=1, timeouts=0, serialized=0),
    )


@pytest.fixture
def scenario_runs(overused_voucher) -> dict:
    """One naive burst of 4 at the voucher: 2 uses (one too many), a 409, a 500."""
    runs = [
        voucher_run(
            (Outcome.OK, 200), (Outcome.OK, 200), (Outcome.REFUSED, 409), (Outcome.INDETERMINATE, 500)
        )
    ]
    assert tables.unjudged_lines(runs, scenario="voucher") == []
    summaries = summarise_scenario(runs, scenario=VOUCHER, race_window=True)
    return json.loads(json.dumps(tables.scenario_document(runs, summaries)))


@pytest.mark.django_db
def test_a_scenario_run_in_which_nothing_succeeded_is_said_to_judge_nothing():
    seed_voucher(limit=1)
    run = voucher_run(*[(Outcome.REFUSED, 404)] * 3)

    assert tables.unjudged_lines([run], scenario="voucher") == [
        "None of the 3 naive requests at -c 3 succeeded (3 x 404): that run's verdict says nothing "
        "about the race. Check that the voucher scenario's data is there for the user who logged in "
        "(seed_scenario voucher)."
    ]


@pytest.fixture
def account_audits(make_account, add_row, add_run) -> list:
    """An account with every kind of example: lost updates and duplicate balances (groups of
    rows) and an overdraft (one row); and a clean one without client runs."""
    raced = make_account(username="alice", opening=3, current=-1)
    for before, after in [(3, 2), (3, 2), (2, 1), (1, 0), (0, -1)]:
        add_row(raced, before, after)
    add_run(raced, ok=5, refused=1)
    make_account(username="bob")
    out = StringIO()
    call_command("audit_transactions", "--format", "json", stdout=out)
    return json.loads(out.getvalue())


def test_a_sweep_names_the_level_concurrency_and_the_4xx_refused(sweep):
    valid(sweep, kind="splatter-trials")

    assert sweep["schema"] == "splatter-trials/1"
    assert [(run["concurrency"], run["ok"], run["refused"]) for run in sweep["runs"]] == [
        (2, 2, 0),
        (2, 2, 0),
        (3, 3, 0),
        (3, 1, 1),
    ]
    assert [(s["strategy"], s["concurrency"], s["trials"]) for s in sweep["summaries"]] == [
        ("naive", 2, 1),
        ("locking", 2, 1),
        ("naive", 3, 1),
        ("locking", 3, 1),
    ]
    assert sweep["race_window"]["3"] == {"held": 5, "windows": 2, "serialized": 0, "timeouts": 1}


@pytest.mark.django_db
def test_a_scenario_run_uses_the_same_names_and_carries_its_audit_document(scenario_runs):
    valid(scenario_runs, kind="splatter-scenario")

    (run,) = scenario_runs["runs"]
    assert scenario_runs["schema"] == "splatter-scenario/1"
    assert (run["concurrency"], run["requests"], run["ok"], run["refused"], run["indeterminate"]) == (
        4,
        4,
        2,
        1,
        1,
    )
    # One use beyond the limit, and the 500 a loser must never get.
    assert (run["violations"], run["server_errors"]) == (2, 1)
    assert run["audit"] == valid(scenario_audit_document(VOUCHER.audit()), kind="scenario-audit")
    (summary,) = scenario_runs["summaries"]
    assert (summary["concurrency"], summary["trials"], summary["hits"], summary["mean_violations"]) == (
        4,
        1,
        1,
        2,
    )
    assert 0 < summary["hit_rate_low"] <= summary["hit_rate"] == 1.0 == summary["hit_rate_high"]


@pytest.mark.django_db
def test_audit_transactions_prints_account_audit_documents(account_audits):
    valid(account_audits, kind="account-audits")

    raced, clean = account_audits
    assert {audit["schema"] for audit in account_audits} == {"account-audit/1"}
    assert raced["client"] == {
        "runs": 1,
        "ok": 5,
        "refused": 1,
        "indeterminate": 0,
        "lowest_final": -2,
        "highest_final": -2,
    }
    examples = {anomaly["kind"]: anomaly["first"] for anomaly in raced["anomalies"]}
    assert set(examples["lost updates"]) == {"balance_before", "withdrawals", "ledger_ids"}
    assert set(examples["duplicate balances"]) == {"balance", "withdrawals", "ledger_ids"}
    assert examples["overdrafts"]["balance"] == -1
    assert (clean["client"], clean["anomalies"], clean["verdict"]) == (None, [], "OK")


@pytest.mark.django_db
def test_audit_transactions_prints_the_scenario_audit_document(overused_voucher):
    out = StringIO()
    call_command("audit_transactions", "--scenario", "voucher", "--format", "json", stdout=out)

    document = valid(json.loads(out.getvalue()), kind="scenario-audit")
    assert document["schema"] == "scenario-audit/1"
    assert [violation["count"] for violation in document["violations"]] == [1]


@pytest.mark.django_db
def test_a_lab_run_keeps_an_account_audit_document(account, make_lab_run):
    run = make_lab_run(account, reads=[1000, 1000], refused=1)

    run.refresh_from_db()
    valid(run.audit, kind="account-audit")
    assert (run.audit["schema"], run.audit["client"]["refused"]) == ("account-audit/1", 1)


def _renamed(document: dict, path: tuple, new_name: str | None) -> dict:
    """A copy of ``document`` with the field at ``path`` renamed (None: removed)."""
    changed = copy.deepcopy(document)
    *parents, name = path
    holder = changed
    for step in parents:
        holder = holder[step]
    value = holder.pop(name)
    if new_name is not None:
        holder[new_name] = value
    return changed


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fixture", "kind", "path", "new_name"),
    [
        ("sweep", "splatter-trials", ("runs", 0, "refused"), "failed"),
        ("sweep", "splatter-trials", ("summaries", 1, "concurrency"), "level"),
        ("sweep", "splatter-trials", ("runs",), "trials"),
        ("sweep", "splatter-trials", ("schema",), None),
        ("scenario_runs", "splatter-scenario", ("runs", 0, "refused"), "fail"),
        ("scenario_runs", "splatter-scenario", ("summaries", 0, "hit_rate_low"), "ci_low"),
        ("scenario_runs", "splatter-scenario", ("runs", 0, "audit", "schema"), None),
        ("account_audits", "account-audits", (0, "client", "refused"), "failed"),
        ("account_audits", "account-audits", (1, "verdict"), None),
        ("account_audits", "account-audits", (0, "anomalies", 1, "first", "ledger_ids"), "ids"),
    ],
)
def test_a_renamed_or_missing_field_fails_validation(request, fixture, kind, path, new_name):
    document = request.getfixturevalue(fixture)
    valid(document, kind=kind)

    # jsonschema names the field: the old name is missing, or the new one is not allowed.
    named = "|".join(re.escape(name) for name in (path[-1], new_name) if name is not None)
    with pytest.raises(ValidationError, match=f"'({named})'"):
        valid(_renamed(document, path, new_name), kind=kind)


@pytest.mark.django_db
def test_the_audits_kept_before_the_schema_are_migrated_to_it(account, make_lab_run):
    run = make_lab_run(account, reads=[1000, 1000], refused=2)
    current = Run.objects.get(pk=run.pk).audit
    unversioned = _renamed(_renamed(current, ("schema",), None), ("client", "refused"), "failed")

    # The migration's own steps, on a copy: the model it ran on (LabRun) is now accounts.Run.
    migrated = copy.deepcopy(unversioned)
    assert STORED_AUDITS._to_version_1(migrated)
    assert valid(migrated, kind="account-audit") == current == audit_document(audit_account(account=account))
    assert not STORED_AUDITS._to_version_1(migrated)

    assert STORED_AUDITS._to_unversioned(migrated)
    assert migrated == unversioned


def test_the_schema_lists_the_codes_own_words():
    definitions = SCHEMA["$defs"]
    assert definitions["anomaly-kind"]["enum"] == list(AnomalyKind)
    assert definitions["driver"]["enum"] == list(DriverName)
    # Every count of the client's outcomes is named by the outcome's own word.
    trial = definitions["splatter-trials"]["properties"]["runs"]["items"]["required"]
    scenario_run = definitions["splatter-scenario"]["properties"]["runs"]["items"]["required"]
    client = definitions["account-audit"]["properties"]["client"]["oneOf"][0]["required"]
    for required in (trial, scenario_run, client):
        assert set(Outcome) <= set(required)
