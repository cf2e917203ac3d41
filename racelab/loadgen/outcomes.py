"""What a client can know of one request it sent: the words every driver and every run's record
share, and every JSON document names its counts by them (docs/json-schema.json). A checker
reconciles what the server kept against these counts."""

import enum


class Outcome(enum.StrEnum):
    # A 2xx answer: what the request asked for happened.
    OK = "ok"
    # A 4xx answer, or a request never sent: it did not happen.
    REFUSED = "refused"
    # A timeout, a reset connection or a 5xx: it may or may not have happened.
    INDETERMINATE = "indeterminate"
