"""What every race's service hands each of its strategies: the request, which strategy carries it
out, and when the server began handling it. A service's own request (a subclass) adds what it
asks for: the voucher code, the activity, the wallets..."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, kw_only=True)
class Requested:
    strategy: StrEnum
    request_started_at: datetime

    @property
    def recorded(self) -> dict[str, object]:
        """The RaceRecord columns (races/models.py) of a row the request writes: which strategy
        wrote it, and when its request began."""
        return {"strategy": self.strategy.value, "request_started_at": self.request_started_at}
