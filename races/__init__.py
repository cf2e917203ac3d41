"""What the demo's eight races share: the form endpoint every one of them is, the refusals its
services raise, the retries of a transaction the database refused to serialize, and the shape of
a broken invariant their checkers report. The bank's withdrawal (accounts/) and the seven
scenarios (scenarios/) build on it; bank/ is the Django project that serves them."""
