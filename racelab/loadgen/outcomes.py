"""What a client can know of one request it sent: the words every driver and the experiment's
recording step share, and every JSON document names its counts by them (docs/json-schema.json).
The checker sees them as ClientRun's ok / failed / indeterminate counts."""

import enum


class Outcome(enum.StrEnum):
    # A 2xx answer: the withdrawal happened.
    OK = "ok"
    # A 4xx answer, or a request never sent: it did not happen.
    REFUSED = "refused"
    # A timeout, a reset connection or a 5xx: it may or may not have happened.
    INDETERMINATE = "indeterminate"
