"""The experiment that drives a running lab server: plans, drivers, runs, the strategy matrix,
trials and their statistics, and the `splatter` command. The bank it drives is in ``accounts``;
the HTTP client is in ``racelab.loadgen``."""
