"""Bad input to the get_or_create scenario's endpoint, through the real Gunicorn: a clear 4xx,
nothing changed; and the naive strategy's 500, which is the bug, not bad input."""

from urllib.parse import urlencode

import pytest

from racelab.loadgen.login import SessionCookies
from races.views import CHUNKED_BODY, NOT_A_FORM, NOT_LOGGED_IN
from scenarios.get_or_create.forms import FULL_NAME_ERROR, STRATEGY_ERROR
from scenarios.get_or_create.provisioning import LAB_REPOSITORY
from tests.hardening.lab_http import request
from tests.helpers import LAB_USER, lab_snapshot, log_in_lab_user
from tests.lab_database import command

pytestmark = pytest.mark.e2e

SYNC = "/scenarios/get_or_create/sync/"
DUPLICATED = "lab/duplicated"
# Two rows of one name, as a naive race leaves them (the race itself is tests/e2e's).
MAKE_DUPLICATES = f"""
from django.contrib.auth.models import User
from django.utils import timezone
from scenarios.get_or_create.models import RemoteRepository
user = User.objects.get(username={LAB_USER!r})
for _ in range(2):
    RemoteRepository.objects.create(
        full_name={DUPLICATED!r}, synced_by=user, strategy="naive", request_started_at=timezone.now()
    )
"""


@pytest.fixture(scope="module")
def session(module_lab, module_server, tmp_path_factory) -> SessionCookies:
    command(module_lab, "seed_scenario", "get_or_create")
    cookies = log_in_lab_user(module_server, tmp_path_factory.mktemp("login"))
    created = request(module_server.url, "POST", SYNC, body=f"full_name={LAB_REPOSITORY}", session=cookies)
    assert (created.status, created.text.split(":")[0]) == (200, f"Repository {LAB_REPOSITORY} created")
    return cookies


@pytest.fixture
def unchanged(module_lab, session):
    before = lab_snapshot(module_lab)
    assert any(row["model"] == "get_or_create.remoterepository" for row in before)
    yield
    assert lab_snapshot(module_lab) == before


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        (f"{SYNC}?strategy=fast", {"full_name": LAB_REPOSITORY}, STRATEGY_ERROR),
        (
            f"{SYNC}?strategy=naive&strategy=serializable",
            {"full_name": LAB_REPOSITORY},
            "strategy was given 2 times",
        ),
        (SYNC, {}, FULL_NAME_ERROR),
        (SYNC, {"full_name": "lab"}, FULL_NAME_ERROR),
        (SYNC, {"full_name": "lab/repository/extra"}, FULL_NAME_ERROR),
        (SYNC, {"full_name": "lab/my repository"}, FULL_NAME_ERROR),
        (SYNC, {"full_name": "lab/dépôt"}, FULL_NAME_ERROR),
        (SYNC, {"full_name": "lab/" + "x" * 97}, FULL_NAME_ERROR),
        (SYNC, [("full_name", LAB_REPOSITORY), ("full_name", LAB_REPOSITORY)], "full_name was given 2 times"),
    ],
)
def test_bad_forms_are_refused_with_a_reason(module_server, session, path, body, reason, unchanged):
    reply = request(module_server.url, "POST", path, body=urlencode(body), session=session)
    assert reply.status == 400, reply.text
    assert reason in reply.text


def test_anonymous_sync_is_refused(module_server, unchanged):
    reply = request(module_server.url, "POST", SYNC, body=f"full_name={LAB_REPOSITORY}")
    assert reply.status == 403  # no CSRF token: Django's own refusal comes first


def test_a_session_without_a_login_is_refused(module_server, session, unchanged):
    anonymous = SessionCookies(csrftoken=session.csrftoken, sessionid="not-a-session")
    reply = request(module_server.url, "POST", SYNC, body=f"full_name={LAB_REPOSITORY}", session=anonymous)
    assert (reply.status, reply.text) == (403, NOT_LOGGED_IN)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_not_allowed(module_server, session, method, unchanged):
    assert request(module_server.url, method, SYNC, session=session).status == 405


def test_a_chunked_or_non_form_body_is_refused(module_server, session, unchanged):
    chunked = request(
        module_server.url, "POST", SYNC, body=iter([f"full_name={LAB_REPOSITORY}".encode()]), session=session,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    json_body = request(
        module_server.url, "POST", SYNC, body=f'{{"full_name": "{LAB_REPOSITORY}"}}', session=session,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert (chunked.status, chunked.text) == (411, CHUNKED_BODY)
    assert (json_body.status, json_body.text) == (415, NOT_A_FORM)


def test_a_name_left_twice_answers_500_to_naive_and_is_found_by_serializable(
    module_lab, module_server, session
):
    command(module_lab, "shell", "--command", MAKE_DUPLICATES)
    before = lab_snapshot(module_lab)

    def sync(strategy: str):
        return request(
            module_server.url,
            "POST",
            f"{SYNC}?strategy={strategy}",
            body=f"full_name={DUPLICATED}",
            session=session,
        )

    broken, found = sync("naive"), sync("serializable")

    assert broken.status == 500  # the bug: get() raises MultipleObjectsReturned
    assert (found.status, found.text.split(":")[0]) == (200, f"Repository {DUPLICATED} found")
    assert lab_snapshot(module_lab) == before
