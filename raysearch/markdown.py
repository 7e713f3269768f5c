"""Markdown tables, as the CLI prints them and the reports write them."""

from __future__ import annotations

from raysearch.config import METRIC_NAMES


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; floats get 4 decimals."""
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def metrics_table(rows: dict[str, dict[str, float]], ks: tuple[int, ...]) -> str:
    """One row per part (e.g. valid, test), one column per metric@K."""
    columns = [f"{name}@{k}" for k in ks for name in METRIC_NAMES]
    return markdown_table(["part", *columns], [[part, *(values[c] for c in columns)] for part, values in rows.items()])
