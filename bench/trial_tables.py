"""The Markdown the trial benchmarks print: a table, a hit rate with its interval, milliseconds."""

from tabulate import tabulate


def table(headers: list[str], rows: list[tuple]) -> None:
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))


def hit_rate(summary: dict) -> str:
    return f"{summary['hit_rate']:.1%} ({summary['hit_rate_low']:.1%} to {summary['hit_rate_high']:.1%})"


def milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
