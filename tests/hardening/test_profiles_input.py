"""Bad input to the profile endpoint, through the real Gunicorn: a clear 4xx, nothing changed."""

from urllib.parse import urlencode

import pytest

from racelab.loadgen.login import SessionCookies
from races.charset import NOT_UTF8
from races.forms import STRATEGY_IN_FORM
from races.views import CHUNKED_BODY, NOT_A_FORM, NOT_LOGGED_IN
from scenarios.profiles.forms import FIELDS_ERROR, PROFILE_ERROR, STRATEGY_ERROR, value_error
from scenarios.profiles.models import MAX_TEXT_LENGTH, ProfileField
from scenarios.profiles.provisioning import LAB_PROFILE
from tests.hardening.lab_http import request
from tests.helpers import lab_snapshot, log_in_lab_user
from tests.lab_database import command

pytestmark = pytest.mark.e2e

EDIT = "/scenarios/profile/edit/"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CITY = {"profile": LAB_PROFILE, "city": "Lisbon"}
CITY_ERROR, DISPLAY_NAME_ERROR = value_error(ProfileField.CITY), value_error(ProfileField.DISPLAY_NAME)


@pytest.fixture(scope="module")
def session(module_lab, module_server, tmp_path_factory) -> SessionCookies:
    command(module_lab, "seed_scenario", "profile")
    return log_in_lab_user(module_server, tmp_path_factory.mktemp("login"))


@pytest.fixture
def unchanged(module_lab, session):
    before = lab_snapshot(module_lab)
    assert any(row["model"] == "profiles.profile" for row in before)
    yield
    assert lab_snapshot(module_lab) == before


def patch(server, session, *, body, path: str = EDIT, headers: dict[str, str] = FORM):
    return request(server.url, "PATCH", path, body=body, session=session, headers=headers)


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        (f"{EDIT}?strategy=fast", CITY, 400, STRATEGY_ERROR),
        (f"{EDIT}?strategy=naive&strategy=version", CITY, 400, "strategy was given 2 times"),
        (EDIT, {"city": "Lisbon"}, 400, PROFILE_ERROR),
        (EDIT, {"profile": "lab profile", "city": "Lisbon"}, 400, PROFILE_ERROR),
        (EDIT, {"profile": "é" * 3, "city": "Lisbon"}, 400, PROFILE_ERROR),
        (
            EDIT,
            [("profile", LAB_PROFILE), ("profile", LAB_PROFILE), ("city", "Lisbon")],
            400,
            "profile was given 2",
        ),
        (EDIT, {"profile": LAB_PROFILE}, 400, FIELDS_ERROR),
        (EDIT, {**CITY, "display_name": "Ada"}, 400, FIELDS_ERROR),
        (EDIT, {**CITY, "strategy": "version"}, 400, STRATEGY_IN_FORM),
        (
            EDIT,
            [("profile", LAB_PROFILE), ("city", "Lisbon"), ("city", "Porto")],
            400,
            "city was given 2 times",
        ),
        (EDIT, {"profile": LAB_PROFILE, "city": " "}, 400, CITY_ERROR),
        (EDIT, {"profile": LAB_PROFILE, "city": "x" * (MAX_TEXT_LENGTH + 1)}, 400, CITY_ERROR),
        (EDIT, {"profile": LAB_PROFILE, "display_name": "Ada\x00"}, 400, DISPLAY_NAME_ERROR),
        (
            EDIT,
            {"profile": "no-such-profile", "city": "Lisbon"},
            404,
            "There is no profile 'no-such-profile'.",
        ),
    ],
)
def test_bad_forms_are_refused_with_a_reason(module_server, session, path, body, status, reason, unchanged):
    reply = patch(module_server, session, path=path, body=urlencode(body))
    assert reply.status == status, reply.text
    assert reason in reply.text


def test_anonymous_edits_are_refused(module_server, unchanged):
    reply = request(module_server.url, "PATCH", EDIT, body=urlencode(CITY), headers=FORM)
    assert reply.status == 403  # no CSRF token: Django's own refusal comes first


def test_a_session_without_a_login_is_refused(module_server, session, unchanged):
    anonymous = SessionCookies(csrftoken=session.csrftoken, sessionid="not-a-session")
    reply = patch(module_server, anonymous, body=urlencode(CITY))
    assert (reply.status, reply.text) == (403, NOT_LOGGED_IN)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_other_methods_are_not_allowed(module_server, session, method, unchanged):
    reply = request(module_server.url, method, EDIT, body=urlencode(CITY), session=session, headers=FORM)
    assert reply.status == 405


@pytest.mark.parametrize(
    "content_type", ["application/json", "multipart/form-data; boundary=x", "text/plain", None]
)
def test_a_body_that_is_not_a_urlencoded_form_is_refused(module_server, session, content_type, unchanged):
    headers = {} if content_type is None else {"Content-Type": content_type}
    reply = patch(module_server, session, body=urlencode(CITY), headers=headers)
    assert (reply.status, reply.text) == (415, NOT_A_FORM)


@pytest.mark.parametrize("charset", ["rot13", "base64", "latin-1", "utf-16"])
def test_a_form_in_another_charset_than_utf8_is_refused(module_server, session, charset, unchanged):
    headers = {"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"}
    reply = patch(module_server, session, body=urlencode(CITY), headers=headers)
    assert (reply.status, reply.text) == (400, NOT_UTF8)


def test_a_form_in_utf8_said_or_not_is_read(module_server, module_lab, session):
    for content_type in (
        "application/x-www-form-urlencoded; charset=UTF-8",
        "application/x-www-form-urlencoded",
    ):
        reply = patch(module_server, session, body=urlencode(CITY), headers={"Content-Type": content_type})
        assert reply.status == 200, reply.text


def test_a_chunked_body_is_refused(module_server, session, unchanged):
    reply = patch(module_server, session, body=iter([urlencode(CITY).encode()]))
    assert (reply.status, reply.text) == (411, CHUNKED_BODY)


def test_a_good_edit_is_read_from_the_body_of_the_patch(module_lab, module_server, session):
    reply = patch(module_server, session, path=f"{EDIT}?strategy=update_fields", body=urlencode(CITY))

    assert reply.status == 200 and reply.text.startswith(f"Profile {LAB_PROFILE}: city set to 'Lisbon'")
    (profile,) = [row for row in lab_snapshot(module_lab) if row["model"] == "profiles.profile"]
    assert profile["fields"]["city"] == "Lisbon"
