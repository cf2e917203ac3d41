"""The profile scenario in one process: each strategy, its refusals, the endpoint, the checker,
the commands, and the race held open at the SQL level with no hook in the code."""

import json
import threading
import time
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from racelab.racewindow.barrier import armed
from racelab.racewindow.statements import holding
from races.refusals import NotFound, Refused
from races.views import NOT_A_FORM
from scenarios.profiles import edits
from scenarios.profiles.audit import CLOBBERED, audit_profiles
from scenarios.profiles.edits import (
    SAFE_STRATEGIES,
    Strategy,
    edit_profile,
)
from scenarios.profiles.forms import FIELDS_ERROR, PROFILE_ERROR, STRATEGY_ERROR, value_error
from scenarios.profiles.models import MAX_TEXT_LENGTH, Profile, ProfileEdit, ProfileField
from scenarios.profiles.provisioning import LAB_EDITS, LAB_PROFILE, STARTING_VALUES, seed_profile
from scenarios.profiles.scenario import PROFILE
from tests.concurrency import JOIN_SECONDS, run_concurrently
from tests.helpers import PASSWORD, STARTED_AT
from tests.json_schema import valid

URL = reverse("edit-profile")
DISPLAY_NAME, CITY = ProfileField.DISPLAY_NAME, ProfileField.CITY
FORM = "application/x-www-form-urlencoded"
CHANGED = f"Profile {LAB_PROFILE} changed since this request read it (version 0); nothing was saved"
ALL = [pytest.param(strategy, id=strategy.value) for strategy in Strategy]
SAFE = [pytest.param(strategy, id=strategy.value) for strategy in SAFE_STRATEGIES]


@pytest.fixture
def user(db) -> User:
    return User.objects.create_user(username="alice", password=PASSWORD)


@pytest.fixture
def profile(db) -> Profile:
    seed_profile()
    return Profile.objects.get(handle=LAB_PROFILE)


def edit(strategy: Strategy, field: ProfileField, value: str, *, handle: str = LAB_PROFILE):
    return edit_profile(
        handle=handle, field=field, value=value, strategy=strategy, request_started_at=STARTED_AT
    )


def shown(profile: Profile) -> dict[str, str]:
    profile.refresh_from_db()
    return {field: getattr(profile, field) for field in ProfileField}


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ALL)
def test_each_strategy_sets_the_one_field_and_records_the_edit(profile, strategy):
    accepted = edit(strategy, CITY, "Lisbon")

    (row,) = ProfileEdit.objects.all()
    assert (accepted.handle, accepted.field, accepted.value, accepted.edit_id) == (
        LAB_PROFILE,
        CITY,
        "Lisbon",
        row.pk,
    )
    assert (row.profile_id, row.field, row.value, row.strategy) == (
        profile.pk,
        CITY,
        "Lisbon",
        strategy.value,
    )
    assert row.request_started_at == STARTED_AT
    assert shown(profile) == {DISPLAY_NAME: STARTING_VALUES[DISPLAY_NAME], CITY: "Lisbon"}
    assert profile.version == (1 if strategy is Strategy.VERSION else 0)


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ALL)
def test_edits_one_after_another_all_stay_visible(profile, strategy):
    edit(strategy, DISPLAY_NAME, "Ada Lovelace")
    edit(strategy, CITY, "London")
    longest = "Zoë's town, " + "é" * (MAX_TEXT_LENGTH - 12)
    edit(strategy, CITY, longest)

    assert shown(profile) == {DISPLAY_NAME: "Ada Lovelace", CITY: longest}
    assert ProfileEdit.objects.count() == 3
    assert audit_profiles().violations == []


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ALL)
def test_an_unknown_profile_changes_nothing(profile, strategy, database_unchanged):
    with database_unchanged(), pytest.raises(NotFound, match="There is no profile 'nope'"):
        edit(strategy, CITY, "Lisbon", handle="nope")


def lab_edit(index: int) -> tuple[ProfileField, str]:
    """What request ``index`` of a lab run sets: the two forms in turn, as the lab sends them."""
    form = PROFILE.forms[index % len(PROFILE.forms)]
    ((field, value),) = [(name, value) for name, value in form.items() if name != "profile"]
    return ProfileField(field), value


def edit_concurrently(*, strategy: Strategy, parties: int, window) -> list:
    """``parties`` edits of the lab profile at once, request i sending the lab's form i % 2,
    each held in ``window`` as the server holds a request; what each got (or raised)."""

    def one(field: ProfileField, value: str):
        def call() -> object:
            with holding(window=window):
                return edit_profile(
                    handle=LAB_PROFILE,
                    field=field,
                    value=value,
                    strategy=strategy,
                    request_started_at=timezone.now(),
                )

        return call

    return run_concurrently([one(*lab_edit(index)) for index in range(parties)])


def test_the_lab_sends_one_form_per_field():
    assert [lab_edit(index) for index in range(3)] == [
        (DISPLAY_NAME, LAB_EDITS[DISPLAY_NAME]),
        (CITY, LAB_EDITS[CITY]),
        (DISPLAY_NAME, LAB_EDITS[DISPLAY_NAME]),
    ]
    assert PROFILE.method == "PATCH" and PROFILE.never_held == (Strategy.UPDATE,)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parties", [2, 5])
def test_naive_clobbers_exactly_one_field_when_requests_are_held_together(parties):
    with armed(parties=parties, timeout=5, at=PROFILE.park_point) as barrier:
        for _ in range(20):
            seed_profile()
            results = edit_concurrently(strategy=Strategy.NAIVE, parties=parties, window=barrier.window)

            # Every PATCH was answered 200 and recorded; the profile shows one of the two.
            assert not any(isinstance(result, Exception) for result in results), results
            assert ProfileEdit.objects.count() == parties
            profile = Profile.objects.get(handle=LAB_PROFILE)
            assert sorted(field for field in ProfileField if getattr(profile, field) == LAB_EDITS[field]) in (
                [DISPLAY_NAME],
                [CITY],
            )
            audit = audit_profiles(handle=LAB_PROFILE)
            assert [(v.kind, v.count) for v in audit.violations] == [(CLOBBERED, 1)]
            assert PROFILE.naive_violations(parties, audit) == 1
        stats = barrier.stats()
    assert (stats.held, stats.windows, stats.timeouts) == (20 * parties, 20, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("strategy", SAFE)
def test_safe_strategies_keep_every_accepted_edit_visible(strategy):
    parties, timeout = 4, 1.0
    seed_profile()
    started = time.monotonic()
    with armed(parties=parties, timeout=timeout, at=PROFILE.park_point) as barrier:
        results = edit_concurrently(strategy=strategy, parties=parties, window=barrier.window)
        stats = barrier.stats()
    elapsed = time.monotonic() - started

    refused = [result for result in results if isinstance(result, Refused)]
    accepted = len(results) - len(refused)
    assert len(results) == parties and not any(isinstance(r, NotFound) for r in results), results
    if strategy is Strategy.VERSION:
        # All four read version 0; the first UPDATE bumps it, and the other three find it changed.
        assert len(refused) == parties - 1 and all(str(r).startswith(CHANGED) for r in refused), results
        assert Profile.objects.get(handle=LAB_PROFILE).version == 1
    else:
        assert refused == [] and shown(Profile.objects.get(handle=LAB_PROFILE)) == LAB_EDITS
    assert ProfileEdit.objects.count() == accepted
    assert audit_profiles(handle=LAB_PROFILE).violations == []
    held = 0 if strategy in PROFILE.never_held else parties
    assert (stats.held, stats.windows, stats.timeouts) == (held, 1 if held else 0, 0)
    assert elapsed < parties * (timeout + 1) + 5


def test_the_checker_finds_clobbered_fields_on_hand_made_rows_and_nothing_on_clean_ones(db):
    def make(handle: str, **values: str) -> Profile:
        return Profile.objects.create(handle=handle, **{**STARTING_VALUES, **values})

    def record(profile: Profile, field: ProfileField, *values: str) -> list[int]:
        return [
            ProfileEdit.objects.create(
                profile=profile, field=field, value=value, strategy="naive", request_started_at=STARTED_AT
            ).pk
            for value in values
        ]

    clean = make("clean", display_name="Grace")
    record(clean, DISPLAY_NAME, "Ada", "Grace")
    assert audit_profiles().violations == []

    # One edit of the city, and the profile still shows the city it started with.
    first = make("first")
    first_ids = record(first, CITY, "Lisbon")
    # Shows the second of four display names: the third and the fourth are missed.
    worst = make("worst", display_name="Grace", city="Paris")
    worst_ids = record(worst, DISPLAY_NAME, "Ada", "Grace", "Ada", "Hedy")
    record(worst, CITY, "Paris")

    audit = audit_profiles()
    (violation,) = audit.violations
    assert (violation.kind, violation.count) == (CLOBBERED, 2)
    assert violation.first == {
        "profile": "first",
        "field": CITY,
        "profile_value": STARTING_VALUES[CITY],
        "latest_edit_value": "Lisbon",
        "edits_missed": 1,
        "missed_edit_ids": first_ids,
    }
    assert violation.worst == {
        "profile": "worst",
        "field": DISPLAY_NAME,
        "profile_value": "Grace",
        "latest_edit_value": "Hedy",
        "edits_missed": 2,
        "missed_edit_ids": worst_ids[2:],
    }
    assert dict(audit.figures) == {
        "profiles": 3,
        "accepted edits": 8,
        "fields edited": 4,
        "fields clobbered": 2,
    }
    assert audit.verdict == f"ANOMALIES: {CLOBBERED}"
    assert audit_profiles(handle="clean").violations == []
    assert [v.first["profile"] for v in audit_profiles(handle="worst").violations] == ["worst"]


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def patch(client, *, strategy: str = "naive", query: str | None = None, **form):
    return client.patch(
        f"{URL}?{query if query is not None else f'strategy={strategy}'}",
        urlencode(form, doseq=True),
        content_type=FORM,
    )


@pytest.mark.django_db
def test_the_endpoint_answers_what_it_set(logged_in, profile):
    answer = patch(logged_in, strategy="update_fields", profile=LAB_PROFILE, city=" Lisbon ")

    row = ProfileEdit.objects.get()
    assert (answer.status_code, answer["Content-Type"]) == (200, "text/plain")
    assert answer.content.decode() == f"Profile {LAB_PROFILE}: city set to 'Lisbon' (edit {row.pk}).\n"
    assert (row.value, row.strategy) == ("Lisbon", "update_fields")


def patch_concurrently(user: User, *, strategy: Strategy, parties: int) -> list[tuple[int, str]]:
    """``parties`` logged-in PATCHes of the lab profile through the test client, the two lab
    forms in turn, held together by the race-window middleware as a server holds them; each
    (status, text) in finishing order."""
    answers, lock = [], threading.Lock()

    def one(field: ProfileField, value: str) -> None:
        try:
            client = Client(raise_request_exception=False)
            client.force_login(user)
            response = patch(client, strategy=strategy, profile=LAB_PROFILE, **{field: value})
        finally:
            connection.close()
        with lock:
            answers.append((response.status_code, response.content.decode()))

    with armed(parties=parties, timeout=5, at=PROFILE.park_point):
        threads = [threading.Thread(target=one, args=lab_edit(index)) for index in range(parties)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=JOIN_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "a request is stuck"
    return answers


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("strategy", "statuses", "clobbered"),
    [
        (Strategy.NAIVE, [200, 200], 1),
        (Strategy.UPDATE_FIELDS, [200, 200], 0),
        (Strategy.VERSION, [200, 409], 0),
    ],
)
def test_the_endpoint_answers_both_patches_of_a_held_race(user, strategy, statuses, clobbered):
    seed_profile()
    answers = patch_concurrently(user, strategy=strategy, parties=2)

    # The bug answers 200 to both and keeps one; the version strategy tells its loser why.
    assert sorted(status for status, _ in answers) == statuses, answers
    assert sum(v.count for v in audit_profiles().violations) == clobbered
    for status, text in answers:
        if status == 409:
            assert text.startswith(CHANGED) and text.endswith("send your change again.\n")


TOO_LONG = "x" * (MAX_TEXT_LENGTH + 1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "form", "status", "reason"),
    [
        ("strategy=fast", {"profile": LAB_PROFILE, "city": "Lisbon"}, 400, STRATEGY_ERROR),
        (
            "strategy=naive&strategy=version",
            {"profile": LAB_PROFILE, "city": "Lisbon"},
            400,
            "strategy was given 2",
        ),
        ("", {"city": "Lisbon"}, 400, PROFILE_ERROR),
        ("", {"profile": "lab profile", "city": "Lisbon"}, 400, PROFILE_ERROR),
        ("", {"profile": "x" * 41, "city": "Lisbon"}, 400, PROFILE_ERROR),
        ("", {"profile": [LAB_PROFILE, LAB_PROFILE], "city": "Lisbon"}, 400, "profile was given 2 times"),
        ("", {"profile": LAB_PROFILE}, 400, FIELDS_ERROR),
        ("", {"profile": LAB_PROFILE, "city": "Lisbon", "display_name": "Ada"}, 400, FIELDS_ERROR),
        (
            "",
            {"profile": LAB_PROFILE, "city": "Lisbon", "nmae": "Ada"},
            400,
            f"'nmae' is not a field of a profile. {FIELDS_ERROR}",
        ),
        ("", {"profile": LAB_PROFILE, "version": "7", "city": "Lisbon"}, 400, "'version' is not a field"),
        (
            "",
            {"profile": LAB_PROFILE, "city": ["Lisbon", "Porto"]},
            400,
            "city was given 2 times; send it once.",
        ),
        ("", {"profile": LAB_PROFILE, "city": ""}, 400, value_error(CITY)),
        ("", {"profile": LAB_PROFILE, "display_name": "   "}, 400, value_error(DISPLAY_NAME)),
        ("", {"profile": LAB_PROFILE, "city": TOO_LONG}, 400, value_error(CITY)),
        ("", {"profile": LAB_PROFILE, "city": "Lis\x00bon"}, 400, value_error(CITY)),
        ("", {"profile": LAB_PROFILE, "city": "Lis\nbon"}, 400, value_error(CITY)),
        (
            "",
            {"profile": "nope", "city": "Lisbon"},
            404,
            "There is no profile 'nope'. Create it with `manage.py seed_scenario profile`.",
        ),
    ],
)
def test_bad_input_gets_a_reason_and_changes_nothing(
    logged_in, profile, query, form, status, reason, database_unchanged
):
    with database_unchanged():
        response = patch(logged_in, query=query, **form)
    assert response.status_code == status
    assert reason in response.content.decode()


@pytest.mark.django_db
def test_a_body_that_is_not_a_urlencoded_form_is_refused(logged_in, profile, database_unchanged):
    with database_unchanged():
        json_body = logged_in.patch(
            URL, json.dumps({"profile": LAB_PROFILE}), content_type="application/json"
        )
        # Django parses multipart bodies for POST only.
        multipart = logged_in.patch(URL, b"--x--\r\n", content_type="multipart/form-data; boundary=x")
    assert (json_body.status_code, json_body.content.decode()) == (415, NOT_A_FORM)
    assert (multipart.status_code, multipart.content.decode()) == (415, NOT_A_FORM)


@pytest.mark.django_db
def test_anonymous_requests_and_other_methods_are_refused(logged_in, profile, database_unchanged):
    anonymous = Client()
    with database_unchanged():
        assert patch(anonymous, profile=LAB_PROFILE, city="Lisbon").status_code == 403
        assert logged_in.get(URL).status_code == 405
        assert logged_in.post(URL, {"profile": LAB_PROFILE, "city": "Lisbon"}).status_code == 405
        assert logged_in.put(URL, "profile=lab-profile&city=Lisbon", content_type=FORM).status_code == 405


STARTING = "display_name 'Lab Profile', city 'Nowhere', version 0"


@pytest.mark.django_db
def test_seed_and_reset_commands(capsys):
    call_command("seed_scenario", "profile")
    assert (
        f"Created profile {LAB_PROFILE}: {STARTING}; 0 accepted edit(s) cleared." in capsys.readouterr().out
    )
    assert PROFILE.is_seeded()
    other = Profile.objects.create(handle="other", display_name="Grace", city="Arlington", version=3)
    for strategy in (Strategy.NAIVE, Strategy.VERSION):
        edit(strategy, CITY, "Lisbon")
    edit(Strategy.UPDATE, DISPLAY_NAME, "Hedy", handle="other")

    call_command("seed_scenario", "profile")
    assert f"Reset profile {LAB_PROFILE}: {STARTING}; 2 accepted edit(s) cleared." in capsys.readouterr().out
    assert shown(Profile.objects.get(handle=LAB_PROFILE)) == STARTING_VALUES
    assert list(ProfileEdit.objects.values_list("profile__handle", flat=True)) == ["other"]

    call_command("reset_scenario", "profile", "--no-input")
    assert ProfileEdit.objects.count() == 0
    assert shown(other) == STARTING_VALUES and other.version == 0
    assert f"Reset 2 profile(s) to {STARTING}: 1 accepted edit(s) cleared." in capsys.readouterr().out


@pytest.mark.django_db
def test_seeding_with_a_limit_is_refused_and_changes_nothing(profile, database_unchanged):
    edit(Strategy.NAIVE, CITY, "Lisbon")
    with (
        database_unchanged(),
        pytest.raises(CommandError, match="The profile scenario has nothing to size; drop --limit."),
    ):
        call_command("seed_scenario", "profile", "--limit", "2")


@pytest.mark.django_db
def test_audit_transactions_proves_the_profile_invariant(profile, capsys):
    edit(Strategy.UPDATE_FIELDS, CITY, "Lisbon")
    call_command("audit_transactions", "--scenario", "profile", "--fail-on-anomaly")
    assert "Verdict: OK, the invariant holds." in capsys.readouterr().out

    # A display name accepted and then written back, as the naive race leaves it.
    clobbered = ProfileEdit.objects.create(
        profile=profile, field=DISPLAY_NAME, value="Ada", strategy="naive", request_started_at=STARTED_AT
    )
    call_command("audit_transactions", "--scenario", "profile", "--format", "json")
    document = valid(json.loads(capsys.readouterr().out), kind="scenario-audit")
    assert document["verdict"] == f"ANOMALIES: {CLOBBERED}"
    assert document["figures"] == {
        "profiles": 1,
        "accepted edits": 2,
        "fields edited": 2,
        "fields clobbered": 1,
    }
    (violation,) = document["violations"]
    assert violation["first"]["missed_edit_ids"] == [clobbered.pk]
    assert violation["first"]["profile_value"] == STARTING_VALUES[DISPLAY_NAME]

    with pytest.raises(CommandError, match="The profile scenario breaks its invariant") as failed:
        call_command("audit_transactions", "--scenario", "profile", "--fail-on-anomaly")
    assert failed.value.returncode == 1
    assert CLOBBERED in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize("option", [("--username", "alice"), ("--timeline", "run.svg")])
def test_audit_transactions_refuses_bank_options_with_a_scenario(profile, option, database_unchanged):
    with database_unchanged(), pytest.raises(CommandError, match="drop them with --scenario"):
        call_command("audit_transactions", "--scenario", "profile", *option)


@pytest.mark.django_db
def test_update_fields_on_a_profile_deleted_since_it_was_read_is_not_found(monkeypatch, database_unchanged):
    seed_profile()
    stale = Profile.objects.get(handle=LAB_PROFILE)
    Profile.objects.filter(pk=stale.pk).delete()
    # The read returns the row as it was; the save then finds none to update.
    monkeypatch.setattr(edits._Change, "profile", lambda change: stale)
    with database_unchanged(), pytest.raises(NotFound, match=f"There is no profile '{LAB_PROFILE}'"):
        edit_profile(
            handle=LAB_PROFILE, field=ProfileField.CITY, value="Lisbon", strategy=Strategy.UPDATE_FIELDS,
            request_started_at=STARTED_AT,
        )  # fmt: skip
