"""The Locust driver's plain parts, in-process: the run spec, the shares, the outcome rules, the
master's result file read back, and the history document it becomes."""

import json

import pytest

from experiment.requests import withdrawal_post
from experiment.tables import lost_worker_lines
from racelab.loadgen.burst import outcome_of
from racelab.loadgen.errors import LoadError
from racelab.loadgen.locust.protocol import LocustMode, RunSpec, shares
from racelab.loadgen.locust.result import locust_history_document, read_result
from racelab.loadgen.login import LoginForm
from racelab.loadgen.outcomes import Outcome
from racelab.loadgen.target import LoadRequest, parse_target

pytestmark = pytest.mark.database_independent

POSTS = (withdrawal_post(strategy="naive", amount=1),)
TARGETS = [parse_target("http://127.0.0.1:8001"), parse_target("http://127.0.0.1:8002")]


def record(
    index: int, *, worker: str | None, outcome: str = "ok", status: int | None = 200, **fields
) -> dict:
    return {
        "burst": index // 2, "index": index, "username": "alice", "outcome": outcome, "status": status,
        "answer": str(999_999 - index) if outcome == "ok" else None, "primed_at": 1.0, "sent_at": 1.1 + index,
        "received_at": 1.2 + index, "error": None, "worker": worker, **fields,
    }  # fmt: skip


def result_file(tmp_path, **fields):
    document = {
        "error": None, "mode": "burst", "burst_size": 2, "started_at": 1.0, "finished_at": 3.0,
        "realtime_release": False,
        "workers": [
            {"id": "w1", "pid": 11, "requests": 2, "answered": 2, "lost": None},
            {"id": "w2", "pid": 12, "requests": 2, "answered": 1, "lost": "no answer within 40 s"},
        ],
        "records": [
            record(0, worker="w1"),
            record(1, worker="w2", outcome="indeterminate", status=None, received_at=None, error="lost"),
            record(2, worker="w1", outcome="refused", status=409),
            record(3, worker="w2", outcome="ok", status=200),
        ],
        **fields,
    }  # fmt: skip
    path = tmp_path / "result.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("status", "sent", "outcome"),
    [
        (200, True, Outcome.OK),
        (409, True, Outcome.REFUSED),
        (None, False, Outcome.REFUSED),
        (None, True, Outcome.INDETERMINATE),
        (500, True, Outcome.INDETERMINATE),
        (302, True, Outcome.INDETERMINATE),
    ],
)
def test_every_driver_classifies_a_request_by_the_same_rules(status, sent, outcome):
    assert outcome_of(status=status, sent=sent) is outcome


def test_the_result_file_reads_back_as_a_run_with_what_became_of_each_worker(tmp_path):
    run = read_result(result_file(tmp_path), posts=POSTS, output=None)

    assert run.requests == 4 and run.mode is LocustMode.BURST
    assert run.outcomes() == {Outcome.OK: 2, Outcome.REFUSED: 1, Outcome.INDETERMINATE: 1}
    assert run.outcomes(username="alice")[Outcome.OK] == 2
    assert run.statuses == {200: 2, 409: 1} and run.server_errors == 0
    assert [worker.id for worker in run.lost_workers] == ["w2"]
    assert run.lost_workers[0].unanswered == 1
    assert run.worker_of == {0: "w1", 1: "w2", 2: "w1", 3: "w2"}
    assert all(isinstance(record.outcome, Outcome) for record in run.records)
    assert run.release_spreads == [pytest.approx(1.0), pytest.approx(1.0)]


def test_splatter_warns_of_each_lost_worker_with_what_became_of_its_requests(tmp_path):
    lost_before_its_share = {
        "id": "w3", "pid": 13, "requests": 0, "answered": 0, "lost": "Locust's heartbeat marked it missing",
    }  # fmt: skip
    path = result_file(tmp_path)
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "workers": [*document["workers"], lost_before_its_share]}))

    assert lost_worker_lines(read_result(path, posts=POSTS, output=None)) == [
        "Locust worker w2 (pid 12) was lost (no answer within 40 s): 1 of its 2 request(s) got no answer "
        "to it and count as indeterminate.",
        "Locust worker w3 (pid 13) was lost (Locust's heartbeat marked it missing) before it was handed a "
        "request: the others sent its share.",
    ]


def test_a_steady_run_has_no_release_spread(tmp_path):
    run = read_result(result_file(tmp_path, mode="steady"), posts=POSTS, output=None)
    assert run.release_spreads == []
    assert run.latencies == [pytest.approx(0.1)] * 3


def test_a_run_the_master_gave_up_on_is_a_clear_error(tmp_path):
    path = result_file(tmp_path, error="1 of 2 worker(s) connected within 60 s")
    with pytest.raises(LoadError, match="The Locust run failed: 1 of 2 worker\\(s\\) connected within 60 s."):
        read_result(path, posts=POSTS, output=None)


def test_the_history_names_the_driver_every_server_and_each_requests_worker(tmp_path):
    run = read_result(result_file(tmp_path), posts=POSTS, output=None)

    document = locust_history_document(run, targets=TARGETS)

    assert (document["driver"], document["mode"], document["query"]) == (
        "locust",
        "burst",
        {"strategy": "naive"},
    )
    assert document["targets"] == ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]
    assert document["outcomes"] == {"ok": 2, "refused": 1, "indeterminate": 1}
    assert [entry["worker"] for entry in document["history"]] == ["w1", "w2", "w1", "w2"]
    assert [worker["lost"] for worker in document["workers"]] == [None, "no answer within 40 s"]
    json.dumps(document)  # a JSON document as it stands


def test_the_spec_travels_as_json_and_deals_requests_round_robin(tmp_path):
    spec = RunSpec(
        mode=LocustMode.STEADY, usernames=["alice", "alice-2"], login=LoginForm(path="/auth/login/"),
        forms=[LoadRequest(path="/a", query=(("strategy", "naive"),), fields=(("amount", "1"),)),
               LoadRequest(path="/b", method="PATCH", json='{"x": 1}', headers=(("If-Match", "7"),))],
        targets=["http://127.0.0.1:8001", "http://127.0.0.1:8002", "http://127.0.0.1:8003"],
        requests=7, concurrency=2, run_token=None, response_timeout=30.0, settle=0.1, worker_wait=60.0,
    )  # fmt: skip
    spec.save(tmp_path / "run.json")

    assert RunSpec.load(tmp_path / "run.json") == spec
    assert [spec.form(i).method for i in range(4)] == ["POST", "PATCH", "POST", "PATCH"]
    assert spec.form(1).content_type == "application/json" and spec.form(1).headers == (("If-Match", "7"),)
    assert [spec.target(i)[-4:] for i in range(4)] == ["8001", "8002", "8003", "8001"]
    assert [spec.username(i) for i in range(3)] == ["alice", "alice-2", "alice"]
    assert shares(list(range(7)), parts=2) == [[0, 2, 4, 6], [1, 3, 5]]
    assert shares([0], parts=3) == [[0], [], []]
