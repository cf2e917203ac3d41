"""The demo's requests: a form to one of its endpoints, the strategy to run named in the query."""

from racelab.loadgen.drivers import LoadResult
from racelab.loadgen.target import LoadRequest
from scenarios.withdrawals.scenario import WITHDRAWAL


def strategy_request(
    *, path: str, strategy: str, fields: tuple[tuple[str, str], ...], method: str = "POST"
) -> LoadRequest:
    return LoadRequest(path=path, fields=fields, method=method, query=(("strategy", strategy),))


def withdrawal_post(*, strategy: str, amount: int) -> LoadRequest:
    """The bank's withdrawal of ``amount`` with ``strategy``."""
    return strategy_request(path=WITHDRAWAL.path, strategy=strategy, fields=(("amount", str(amount)),))


def strategy_of(load: LoadResult) -> str:
    """The strategy a run's requests named."""
    return dict(load.posts[0].query).get("strategy", "")
