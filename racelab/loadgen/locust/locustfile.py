"""The lab's locustfile: what ``locust -f racelab/loadgen/locust/locustfile.py`` runs, as master or worker.

splatter starts the master (with ``--lab-session FOLDER``) and its local workers; workers on other
machines are started by hand from a checkout of this project (docs/locust.md). The master conducts
each run splatter hands it (racelab/loadgen/locust/master.py); each worker logs its users in and answers
(worker.py). Steady mode's requests are sent by ``LabUser``, Locust's own fast client; burst
mode's by the burst driver's phases, so every request is released the same way whichever driver
sends it.
"""

import time
from pathlib import Path

from locust import FastHttpUser, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from racelab.loadgen.burst import (
    CONNECT_TIMEOUT_SECONDS,
    DEFAULT_RESPONSE_TIMEOUT_SECONDS,
    RequestRecord,
    answer_text,
    outcome_of,
)
from racelab.loadgen.locust.master import LabMaster
from racelab.loadgen.locust.protocol import SESSION_OPTION, SessionFolder
from racelab.loadgen.locust.worker import LabWorker, WorkerRun
from racelab.loadgen.outcomes import Outcome
from racelab.loadgen.target import LoadRequest

# This process's side of the run: set once Locust has made its runner.
lab_worker: LabWorker | None = None


@events.init_command_line_parser.add_listener
def add_lab_options(parser) -> None:
    parser.add_argument(SESSION_OPTION, metavar="FOLDER", help="The master: the session splatter runs.")


@events.init.add_listener
def take_part(environment, **kwargs) -> None:
    global lab_worker
    if isinstance(environment.runner, MasterRunner):
        LabMaster(environment, SessionFolder(Path(environment.parsed_options.lab_session)))
    elif isinstance(environment.runner, WorkerRunner):
        lab_worker = LabWorker(environment)


class LabUser(FastHttpUser):
    """A steady-mode user: sends its worker's requests one after another; between runs, waits
    for the next share."""

    network_timeout = DEFAULT_RESPONSE_TIMEOUT_SECONDS
    connection_timeout = CONNECT_TIMEOUT_SECONDS

    @task
    def send(self) -> None:
        if lab_worker is None:
            raise StopUser()  # run without a master: there is nothing to send
        run, index = lab_worker.take()
        form, username = run.spec.form(index), run.spec.username(index)
        cookies = run.cookies[username]
        headers = {
            **({"Cookie": cookies.cookie_header} if cookies.cookie_header else {}),
            cookies.names.csrf_header: cookies.csrftoken,
            # An https target's CSRF check wants the Origin (Locust's client speaks TLS, steady mode).
            **dict(run.targets[index % len(run.targets)].origin_headers(form)),
            **dict(form.headers),
            "Content-Type": form.content_type,
            **({"X-Lab-Run": run.spec.run_token} if run.spec.run_token else {}),
        }
        sent_at = time.time()
        record = None
        try:
            record = self._exchange(
                run, index, username=username, form=form, headers=headers, sent_at=sent_at
            )
        finally:
            # Every request taken gets a record, even if the exchange above broke unexpectedly.
            lab_worker.steady_record(
                run,
                record
                or RequestRecord(
                    burst=0, index=index, username=username, outcome=Outcome.INDETERMINATE, status=None,
                    answer=None, primed_at=None, sent_at=sent_at, received_at=None,
                    error="the Locust user failed while sending it",
                )
            )  # fmt: skip

    def _exchange(
        self,
        run: WorkerRun,
        index: int,
        *,
        username: str,
        form: LoadRequest,
        headers: dict[str, str],
        sent_at: float,
    ) -> RequestRecord:
        with self.client.request(
            form.method,
            run.spec.target(index) + form.path_and_query,
            data=form.body.encode(),
            headers=headers,
            name=form.path_and_query,
            catch_response=True,
        ) as response:
            received_at = time.time()
            status = response.status_code or None
            error = getattr(response, "error", None)
            # Refused before anything was sent: it cannot have happened on the server.
            outcome = outcome_of(status=status, sent=not isinstance(error, ConnectionRefusedError))
            if outcome is Outcome.OK:
                response.success()
            else:
                response.failure(f"{outcome.value}: HTTP {status}" if status else str(error))
        return RequestRecord(
            burst=0,
            index=index,
            username=username,
            outcome=outcome,
            status=status,
            answer=answer_text(response.text) if outcome is Outcome.OK else None,
            primed_at=None,
            sent_at=sent_at,
            received_at=received_at if status else None,
            error=None if error is None or outcome is not Outcome.INDETERMINATE else str(error),
        )
