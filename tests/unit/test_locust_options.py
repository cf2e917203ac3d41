"""splatter's Locust options, for the lab's races and at any endpoint (--path): refused with a
sentence before anything is sent or changed, and the plans' defaults (the Locust runs themselves
are covered end to end in tests/e2e/test_locust.py)."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from experiment.plan import DriverName, PlanError, RunPlan
from labserver.lab import free_port
from racelab.loadgen.credentials import SESSION_ENV_VAR
from racelab.loadgen.errors import LoadError
from racelab.loadgen.locust.protocol import LocustMode
from racelab.loadgen.locust.runner import DEFAULT_MASTER_PORT, LocustSetup, MasterAddress, parse_bind
from racelab.loadgen.login import Credentials
from racelab.loadgen.target import LoadRequest, parse_target
from racelab.management.commands import splatter as endpoint
from racelab.runs.plan import EndpointPlan, LocustOptions

pytestmark = pytest.mark.database_independent

TARGET = parse_target("http://127.0.0.1:8001")
USAGE_ERROR = 2


def splatter(*args: str) -> str:
    out = StringIO()
    call_command("splatter", "--username", "alice", "--no-input", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


# The rules racelab/runs/plan.py's LocustOptions keeps, the same for the lab's races and --path.
LOCUST_RULES = [
    (("--locust-workers", "2"), "configure the Locust driver: add --driver locust."),
    (
        ("--driver", "burst", "--locust-mode", "burst"),
        "configure the Locust driver: add --driver locust.",
    ),
    (("--locust-output", "out"), "configure the Locust driver"),
    (
        ("--driver", "locust", "--expect-workers", "2"),
        "--expect-workers N and --locust-bind ADDRESS\\[:PORT\\] go together",
    ),
    (("--driver", "locust", "--locust-bind", "127.0.0.1:5557"), "go together"),
    (("--driver", "locust", "--locust-workers", "0"), "--locust-workers must be from 1 to 64, not 0."),
    (
        ("--driver", "locust", "--expect-workers", "65", "--locust-bind", "127.0.0.1"),
        "--expect-workers must be from 1 to 64, not 65.",
    ),
    (
        ("--driver", "locust", "--locust-workers", "3", "-c", "2"),
        "-c 2 is fewer than the 3 Locust workers",
    ),
    (
        ("--driver", "locust", "--expect-workers", "1", "--locust-bind", "127.0.0.1:http"),
        "the port must be a number",
    ),
    (
        ("--driver", "locust", "--locust-output", "/no-such-folder/out"),
        "--locust-output /no-such-folder/out: give a folder",
    ),
    (
        ("--driver", "locust", "--locust-output", __file__),
        f"--locust-output {__file__}: give a folder, new or existing",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        *LOCUST_RULES,
        (
            ("--driver", "locust,burst", "--trials", "2", "--locust-workers", "3", "-c", "3,2"),
            "-c 2 is fewer than the 3 Locust workers",
        ),
        (
            ("--url", "{url},{url}", "--driver", "burst"),
            "Several --url app servers take turns only with --driver locust",
        ),
        (("--driver", "locust", "--locust-mode", "fast"), "invalid choice: 'fast'"),
    ],
)
def test_bad_locust_options_are_refused_before_anything_is_sent(
    splatter_password, account, lab_port, args, message, database_unchanged
):
    with database_unchanged(), pytest.raises(CommandError, match=message):
        splatter("--url", lab_port.url, *(arg.format(url=lab_port.url) for arg in args))
    assert lab_port.arrivals() == []


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "message"), LOCUST_RULES)
def test_bad_locust_options_at_an_endpoint_are_refused_with_exit_2_before_anything_is_sent(
    splatter_password, account, lab_port, args, message, database_unchanged
):
    with database_unchanged(), pytest.raises(CommandError, match=message) as refused:
        splatter("--url", lab_port.url, "--path", "/a/", *args)
    assert refused.value.returncode == USAGE_ERROR
    assert lab_port.arrivals() == []


@pytest.mark.django_db
@pytest.mark.parametrize("path", [(), ("--path", "/a/")])
def test_local_workers_and_expected_workers_exclude_each_other(
    splatter_password, account, database_unchanged, path
):
    with database_unchanged(), pytest.raises(CommandError, match="not allowed with argument"):
        splatter(*path, "--driver", "locust", "--locust-workers", "1", "--expect-workers", "1")


@pytest.mark.django_db
def test_an_unreachable_server_is_a_clear_error_before_locust_starts(
    splatter_password, account, database_unchanged
):
    url = f"http://127.0.0.1:{free_port()}"
    with database_unchanged(), pytest.raises(CommandError, match=f"Cannot reach the server at {url}"):
        splatter("--driver", "locust", "--url", url)


@pytest.mark.parametrize(
    ("trials", "race_window", "mode"),
    [(None, False, LocustMode.STEADY), (None, True, LocustMode.BURST), (3, False, LocustMode.BURST)],
)
def test_the_mode_is_burst_where_requests_must_meet_and_steady_otherwise(trials, race_window, mode):
    plan = RunPlan(
        target=TARGET, username="alice", strategies=("naive",), drivers=(DriverName.LOCUST,),
        trials=trials, race_window=race_window,
    )  # fmt: skip
    setup = plan.locust_setup
    assert (setup.mode, setup.local_workers, setup.expect_workers, setup.output) == (mode, 1, None, None)


def endpoint_plan(*args: str) -> EndpointPlan:
    """The plan racelab's own splatter (no demo option) makes of ``--path /a/ *args``, anonymous."""
    command = endpoint.Command()
    options = vars(command.create_parser("manage.py", "splatter").parse_args(["--path", "/a/", *args]))
    return command.endpoint_plan(options, interactive=False)


@pytest.mark.parametrize(
    ("args", "setup"),
    [
        (("-c", "2"), LocustSetup(mode=LocustMode.STEADY)),
        (("-c", "2", "--race-window"), LocustSetup(mode=LocustMode.BURST)),
        (
            ("-c", "2", "--race-window", "--locust-mode", "steady", "--locust-workers", "2"),
            LocustSetup(mode=LocustMode.STEADY, local_workers=2),
        ),
        (
            ("-c", "3", "--locust-mode", "burst", "--expect-workers", "3", "--locust-bind", "[::1]:6000"),
            LocustSetup(
                mode=LocustMode.BURST, local_workers=None, expect_workers=3,
                bind=MasterAddress(host="::1", port=6000),
            ),
        ),
    ],
)  # fmt: skip
def test_an_endpoint_run_takes_the_locust_options(monkeypatch, args, setup):
    monkeypatch.delenv(SESSION_ENV_VAR, raising=False)
    plan = endpoint_plan("--driver", "locust", *args)
    assert plan.locust_setup == setup


def test_an_endpoint_runs_locust_reports_go_where_told(monkeypatch, tmp_path):
    monkeypatch.delenv(SESSION_ENV_VAR, raising=False)
    plan = endpoint_plan("--driver", "locust", "--locust-output", str(tmp_path / "locust"))
    assert plan.locust_setup.output == tmp_path / "locust"


def test_the_endpoint_plan_keeps_the_same_rules():
    request = (LoadRequest(path="/a/", method="POST"),)
    anonymous = Credentials(form=None)
    with pytest.raises(PlanError, match="configure the Locust driver: add --driver locust."):
        EndpointPlan(
            target=TARGET, requests=request, credentials=anonymous, driver=DriverName.BURST,
            locust=LocustOptions(workers=2),
        )  # fmt: skip
    with pytest.raises(PlanError, match="-c 2 is fewer than the 3 Locust workers"):
        EndpointPlan(
            target=TARGET, requests=request, credentials=anonymous, driver=DriverName.LOCUST,
            concurrency=2, locust=LocustOptions(workers=3),
        )  # fmt: skip


def test_expected_workers_start_none_here():
    plan = RunPlan(
        target=TARGET, username="alice", strategies=("naive",), drivers=(DriverName.LOCUST,),
        locust=LocustOptions(expect_workers=2, bind=MasterAddress(host="127.0.0.1", port=5557)),
    )  # fmt: skip
    assert (plan.locust_setup.local_workers, plan.locust_setup.workers) == (None, 2)


def test_several_app_servers_take_turns_with_the_locust_driver():
    second = parse_target("http://127.0.0.1:8002")
    plan = RunPlan(
        target=TARGET, targets=(TARGET, second), username="alice", strategies=("naive",),
        drivers=(DriverName.LOCUST,),
    )  # fmt: skip
    assert plan.app_servers == [TARGET, second]
    with pytest.raises(PlanError, match="Several --url app servers"):
        RunPlan(target=TARGET, targets=(TARGET, second), username="alice", strategies=("naive",))


@pytest.mark.parametrize(
    ("value", "allow_remote", "address"),
    [
        ("127.0.0.1", False, MasterAddress(host="127.0.0.1", port=DEFAULT_MASTER_PORT)),
        ("127.0.0.1:6000", False, MasterAddress(host="127.0.0.1", port=6000)),
        ("[::1]:6000", False, MasterAddress(host="::1", port=6000)),
        ("::1", False, MasterAddress(host="::1", port=DEFAULT_MASTER_PORT)),
        ("0.0.0.0:5557", True, MasterAddress(host="0.0.0.0", port=5557)),
    ],
)
def test_the_bind_address_reads_like_locusts_own(value, allow_remote, address):
    assert parse_bind(value, allow_remote=allow_remote) == address


@pytest.mark.parametrize("value", ["127.0.0.1:0", "127.0.0.1:70000", ":5557", "192.168.1.2"])
def test_a_bad_or_remote_bind_address_is_refused(value):
    with pytest.raises(LoadError, match="--locust-bind"):
        parse_bind(value)


def test_the_locustfile_is_in_the_project():
    # Users pass this file to `locust -f` on every machine (docs/locust.md).
    checkout = Path(__file__).resolve().parents[2]
    assert (checkout / "racelab" / "loadgen" / "locust" / "locustfile.py").is_file()
