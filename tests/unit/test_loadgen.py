"""The load client's pure parts: which URL it may hit, the cookie jar, ab's report."""

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from django.contrib.auth.models import User

from labserver.lab import LAB_LOGIN, free_port
from racelab.loadgen import ab
from racelab.loadgen.ab import AbReport, merged_reports, parse_ab_report, run_ab
from racelab.loadgen.errors import LoadError
from racelab.loadgen.login import SessionCookies, log_in, read_cookie_jar
from racelab.loadgen.target import LoadRequest, Target, is_loopback, parse_target
from racelab.runs.plan import PlanError, endpoint_requests, parse_form
from tests.helpers import PASSWORD, require

pytestmark = pytest.mark.database_independent

DATA = Path(__file__).parent / "data"

# racelab.loadgen.target


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://127.0.0.1:8001", Target("http", "127.0.0.1", 8001)),
        ("http://127.0.0.1:8001/", Target("http", "127.0.0.1", 8001)),
        ("http://127.0.0.1", Target("http", "127.0.0.1", 80)),
        ("https://127.0.0.1", Target("https", "127.0.0.1", 443)),
        ("http://127.8.9.10:1234", Target("http", "127.8.9.10", 1234)),
        ("http://localhost:8001", Target("http", "localhost", 8001)),
        ("http://LOCALHOST:8001", Target("http", "localhost", 8001)),
        ("http://[::1]:8001", Target("http", "::1", 8001)),
        ("http://127.0.0.1:/", Target("http", "127.0.0.1", 80)),
        # Credentials in the URL are dropped, never passed on to curl or ab.
        ("http://user:pw@127.0.0.1:8001", Target("http", "127.0.0.1", 8001)),
    ],
)
def test_parse_target_accepts_loopback_servers(url, target):
    assert parse_target(url) == target


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8001",
        "http://example.com",
        "https://example.com:443",
        "http://0.0.0.0:8001",
        "http://[2001:db8::1]:8001",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        # The userinfo trick: the host is example.com, not 127.0.0.1.
        "http://127.0.0.1:8001@example.com",
    ],
)
def test_parse_target_refuses_remote_hosts_without_allow_remote(url):
    with pytest.raises(LoadError, match="is not a loopback address") as refused:
        parse_target(url)

    assert "--allow-remote" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "host"), [("http://10.0.0.1:8001", "10.0.0.1"), ("https://example.com", "example.com")]
)
def test_parse_target_allows_remote_hosts_when_asked(url, host):
    assert parse_target(url, allow_remote=True).host == host


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1", "is not a valid base URL"),
        ("127.0.0.1:8001", "is not a valid base URL"),
        ("http://", "is not a valid base URL"),
        ("", "is not a valid base URL"),
        ("http://127.0.0.1:99999", "is not a valid URL"),
        ("http://127.0.0.1:port", "is not a valid URL"),
        ("http://127.0.0.1:0", "is not a valid URL"),
        ("http://[::1", "is not a valid URL"),
        ("http://127.0.0.1:8001/accounts/withdraw/", "has a path or query"),
        ("http://127.0.0.1:8001/?strategy=naive", "has a path or query"),
        ("http://127.0.0.1:8001/#top", "has a path or query"),
    ],
)
def test_parse_target_refuses_what_is_not_a_base_url(url, message):
    with pytest.raises(LoadError, match=message):
        parse_target(url, allow_remote=True)


def test_target_urls():
    target = Target("http", "127.0.0.1", 8001)

    assert target.base_url == "http://127.0.0.1:8001"
    assert target.url("/auth/login/") == "http://127.0.0.1:8001/auth/login/"
    post = LoadRequest(path="/shop/cart/checkout/", query=(("strategy", "locking"),), fields=(("item", "1"),))
    assert target.post_url(post) == "http://127.0.0.1:8001/shop/cart/checkout/?strategy=locking"
    assert Target("http", "::1", 8001).url("/a/") == "http://[::1]:8001/a/"
    # A path that has a query of its own keeps it.
    assert LoadRequest(path="/a/?x=1", query=(("y", "2"),)).path_and_query == "/a/?x=1&y=2"


@pytest.mark.parametrize(
    "typed",
    [
        "a=1&a=2",
        "a=2&a=1",
        "name=Ada%20Lovelace",
        "name=Ada+Lovelace",
        "q=%2F%3F&empty=&z=%7E",
        "city=S%C3%A3o+Paulo",
        "city=São Paulo",
    ],
)
def test_a_typed_form_goes_out_byte_for_byte(typed):
    (post,) = endpoint_requests(path="/a/", method="POST", forms=[typed], json_body=None, headers=[])

    # Not parsed and encoded again: the order of repeated fields and each encoding reach the server.
    assert post.body == typed
    assert post.padded_body == typed.encode() + b"&"
    # What it parses to is kept for the run's records.
    assert post.fields == tuple(parse_qsl(typed, keep_blank_values=True))


def test_typed_forms_keep_their_fields_for_the_history():
    posts = endpoint_requests(
        path="/a/", method="PATCH", forms=["b=2&a=1", "x=%20"], json_body=None, headers=[]
    )

    assert [post.fields for post in posts] == [(("b", "2"), ("a", "1")), (("x", " "),)]
    assert [post.raw_form for post in posts] == ["b=2&a=1", "x=%20"]


def test_without_data_the_body_is_empty_and_a_hand_made_form_is_encoded():
    (post,) = endpoint_requests(path="/a/", method="POST", forms=[], json_body=None, headers=[])

    assert (post.body, post.padded_body, post.fields) == ("", b"&", ())
    # A request built from fields alone (the demo's) is encoded as before.
    assert LoadRequest(path="/a/", fields=(("name", "Ada Lovelace"),)).body == "name=Ada+Lovelace"


def test_a_form_that_is_not_utf_8_text_is_refused():
    # An argv byte that is not UTF-8 reaches Python as a lone surrogate: it cannot be sent as typed.
    with pytest.raises(PlanError, match="is not a URL-encoded form"):
        parse_form("a=\udcff")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("localhost", True),
        ("128.0.0.1", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


# racelab.loadgen.login


def test_read_cookie_jar_reads_httponly_cookies_as_curl_writes_them():
    # curl's own jar after logging in to the lab: both cookies are HttpOnly there.
    assert read_cookie_jar(DATA / "curl_session_jar.txt") == {
        "sessionid": "redactedsessionid000000000000000",
        "csrftoken": "redactedcsrftoken000000000000000",
    }
    assert read_cookie_jar(DATA / "curl_anonymous_jar.txt") == {
        "csrftoken": "redactedanonymouscsrftoken000000"
    }


def test_read_cookie_jar_skips_comments_blank_and_malformed_lines(tmp_path):
    jar = tmp_path / "jar.txt"
    jar.write_text(
        "# Netscape HTTP Cookie File\n"
        "# 127.0.0.1\tFALSE\t/\tFALSE\t0\tcommented\tout\n"
        "\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tplain\tvalue\n"
        "#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t0\thidden\tsecret\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tempty\t\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t0\ttoo-short\n"
        "not a cookie line\n"
    )

    assert read_cookie_jar(jar) == {"plain": "value", "hidden": "secret", "empty": ""}


def test_read_cookie_jar_missing_file_is_empty(tmp_path):
    assert read_cookie_jar(tmp_path / "never-written.txt") == {}


def test_session_cookie_header_carries_both_cookies():
    assert SessionCookies(csrftoken="c", sessionid="s").cookie_header == "sessionid=s; csrftoken=c"


@pytest.fixture
def needs_curl() -> None:
    require(shutil.which("curl") is not None, "curl is not installed (apt-get install curl)")


@pytest.mark.usefixtures("needs_curl")
def test_log_in_to_a_closed_loopback_port_says_to_start_gunicorn(tmp_path):
    target = parse_target(f"http://127.0.0.1:{free_port()}")

    with pytest.raises(
        LoadError, match="Cannot reach the server at .* is it running, and listening on 127.0.0.1:"
    ):
        log_in(
            target=target, username="alice", password=PASSWORD, workdir=tmp_path, form=LAB_LOGIN, timeout=5
        )


@pytest.mark.usefixtures("needs_curl")
@pytest.mark.django_db(transaction=True)
def test_log_in_with_curl_against_the_app(live_server, tmp_path):
    User.objects.create_user(username="alice", password=PASSWORD)
    target = parse_target(live_server.url)

    cookies = log_in(target=target, username="alice", password=PASSWORD, workdir=tmp_path, form=LAB_LOGIN)

    anonymous = read_cookie_jar(tmp_path / "cookies.txt")["csrftoken"]
    assert cookies.sessionid
    assert cookies.csrftoken
    # Django rotates the CSRF token at login: the new one is the one to send.
    assert cookies.csrftoken != anonymous


@pytest.mark.usefixtures("needs_curl")
@pytest.mark.django_db(transaction=True)
def test_log_in_with_a_wrong_password_is_refused(live_server, tmp_path):
    User.objects.create_user(username="alice", password=PASSWORD)

    with pytest.raises(LoadError, match="refused the username 'alice' or its password"):
        log_in(
            target=parse_target(live_server.url),
            username="alice",
            password="wrong",
            workdir=tmp_path,
            form=LAB_LOGIN,
        )


# racelab.loadgen.ab


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_parse_the_labs_report_with_409s():
    # The argv run_ab builds (-v 2 -l), 60 withdrawals allowed, 40 refused by the minimum.
    report = parse_ab_report(read("ab_lab_variable_length.txt"))

    assert report == AbReport(
        complete=100,
        failed=0,
        failed_connect=0,
        failed_receive=0,
        failed_length=0,
        failed_exceptions=0,
        non_2xx=40,
        requests_per_second=91.59,
        mean_ms=43.671,
        percentiles_ms={50: 26, 90: 73, 99: 372, 100: 372},
        non_2xx_statuses=Counter({"409": 40}),
        answered=100,
    )
    assert (report.ok, report.client_errors, report.server_errors) == (60, 40, 0)
    assert (report.failed_unanswered, report.indeterminate) == (0, 0)


def test_length_failures_are_answered_requests():
    # Without -l ab calls every answer whose length differs from the first one's "failed".
    report = parse_ab_report(read("ab_lab_fixed_length.txt"))

    assert (report.complete, report.failed, report.failed_length) == (100, 50, 50)
    assert (report.failed_connect, report.failed_receive, report.failed_exceptions) == (0, 0, 0)
    assert report.non_2xx_statuses == Counter({"409": 40})
    assert (report.ok, report.client_errors, report.indeterminate) == (60, 40, 0)
    assert report.mean_ms == 57.526  # the mean per request, not the one across concurrent requests
    assert report.percentiles_ms == {50: 52, 90: 90, 99: 263, 100: 263}


def test_resets_and_500s_are_indeterminate():
    # 39 answers of 200, 9 of 409, 6 of 500, and 6 connections reset with no answer at all.
    report = parse_ab_report(read("ab_resets_and_500s.txt"))

    assert (report.complete, report.non_2xx) == (60, 15)
    assert report.non_2xx_statuses == Counter({"409": 9, "500": 6})
    assert (report.failed_receive, report.failed_exceptions) == (6, 6)
    assert (report.client_errors, report.server_errors) == (9, 6)
    # ab counted each reset twice (failed 12 = Receive 6 + Exceptions 6); the header log did not.
    assert report.failed == 12
    assert report.answered == 54
    assert report.ok == 39
    assert report.failed_unanswered == 6
    assert report.indeterminate == 12
    assert report.ok + report.client_errors + report.indeterminate == report.complete


def test_a_report_without_non_2xx_or_failures_has_none():
    text = read("ab_lab_variable_length.txt")
    text = "\n".join(
        line
        for line in text.splitlines()
        if not line.startswith(("Non-2xx responses:", "WARNING: Response code not 2xx"))
    )

    report = parse_ab_report(text)

    assert (report.non_2xx, report.non_2xx_statuses, report.ok) == (0, Counter(), 100)


def test_without_the_v2_log_unanswered_comes_from_the_failure_breakdown():
    text = "\n".join(
        line
        for line in read("ab_lab_fixed_length.txt").splitlines()
        if not line.startswith(("Benchmarking", "LOG: header received:"))
    )

    report = parse_ab_report(text)

    assert report.answered is None
    assert (report.failed_unanswered, report.ok, report.client_errors) == (0, 60, 40)


@pytest.mark.parametrize(
    "missing", ["Complete requests:", "Failed requests:", "Requests per second:", "Time per request:"]
)
def test_a_truncated_report_is_a_load_error(missing):
    text = "\n".join(
        line for line in read("ab_lab_variable_length.txt").splitlines() if not line.startswith(missing)
    )

    with pytest.raises(LoadError, match="Could not read .* from ab's report"):
        parse_ab_report(text)


@pytest.fixture
def fake_ab(monkeypatch):
    """run_ab with ab replaced: records each argv and answers with a lab report."""
    runs = []

    def run_tool(argv, *, timeout):
        runs.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout=read("ab_lab_variable_length.txt"), stderr="")

    monkeypatch.setattr(ab, "require_tool", lambda name: "/usr/bin/ab")
    monkeypatch.setattr(ab, "ab_accepts_variable_length", lambda binary: True)
    monkeypatch.setattr(ab, "run_tool", run_tool)
    return runs


COOKIES = SessionCookies(csrftoken="token", sessionid="k3x9s")
URL = "http://127.0.0.1:8001/accounts/withdraw/?strategy=locking"


def test_run_ab_posts_the_amount_with_the_per_response_log(fake_ab, tmp_path):
    argv, report = run_ab(
        url=URL, cookies=COOKIES, requests=100, concurrency=4, form="amount=3", workdir=tmp_path
    )

    (form_file,) = tmp_path.glob("request-*.form")
    form = str(form_file)
    assert fake_ab == [
        [
            "/usr/bin/ab", "-n", "100", "-c", "4", "-s", "30", "-v", "2", "-r",
            "-C", "sessionid=k3x9s; csrftoken=token", "-H", "X-CSRFToken: token",
            "-p", form, "-T", "application/x-www-form-urlencoded", "-l", URL,
        ]
    ]  # fmt: skip
    assert form_file.read_text() == "amount=3"
    assert argv[11] == "sessionid=<sessionid>; csrftoken=token"
    assert report.complete == 100


def test_run_ab_sends_another_method_as_a_put_renamed(fake_ab, tmp_path):
    run_ab(
        url=URL, cookies=COOKIES, requests=4, concurrency=2, form="city=Lisbon", workdir=tmp_path,
        method="PATCH",
    )  # fmt: skip

    (form_file,) = tmp_path.glob("request-*.form")
    # ab refuses -p with -m ("Cannot mix POST with other methods"); -u then -m renames its PUT.
    sent = fake_ab[0][fake_ab[0].index("-u") :][:4]
    assert sent == ["-u", str(form_file), "-m", "PATCH"]
    assert "-p" not in fake_ab[0] and form_file.read_text() == "city=Lisbon"


def test_reports_of_ab_processes_side_by_side_merge_into_one():
    first = AbReport(
        complete=60, failed=2, failed_connect=0, failed_receive=1, failed_length=0, failed_exceptions=1,
        non_2xx=10, requests_per_second=100.0, mean_ms=10.0, percentiles_ms={50: 8, 99: 30},
        non_2xx_statuses=Counter({"409": 9, "500": 1}), answered=59,
    )  # fmt: skip
    second = AbReport(
        complete=40, failed=0, failed_connect=0, failed_receive=0, failed_length=0, failed_exceptions=0,
        non_2xx=4, requests_per_second=50.0, mean_ms=20.0, percentiles_ms={50: 12, 99: 25},
        non_2xx_statuses=Counter({"409": 4}), answered=40,
    )  # fmt: skip

    merged = merged_reports([first, second])

    assert (merged.complete, merged.failed, merged.non_2xx, merged.answered) == (100, 2, 14, 99)
    assert merged.requests_per_second == 150.0 and merged.mean_ms == 14.0
    assert merged.percentiles_ms == {50: 12, 99: 30}
    assert (merged.client_errors, merged.server_errors, merged.ok) == (13, 1, 85)
    assert merged_reports([first]) is first


def test_run_ab_without_a_form_or_the_log_sends_quiet_gets(fake_ab, tmp_path):
    argv, _ = run_ab(
        url=URL,
        cookies=COOKIES,
        requests=10,
        concurrency=2,
        form=None,
        workdir=tmp_path,
        log_responses=False,
    )

    assert argv == [
        "/usr/bin/ab", "-n", "10", "-c", "2", "-s", "30", "-r",
        "-C", "sessionid=<sessionid>; csrftoken=token", "-l", URL,
    ]  # fmt: skip
    assert list(tmp_path.iterdir()) == []
