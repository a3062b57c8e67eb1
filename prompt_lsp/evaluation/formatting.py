"""How scores, deltas and times read, in the terminal and in the editor alike. Light: the
editor imports it at start-up."""

from __future__ import annotations

import datetime

from prompt_lsp.format.text import one_line as shorten

__all__ = ["format_delta", "format_score", "format_when", "shorten"]


def format_score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def format_delta(value: float | None) -> str:
    """▲0.051 / ▼0.012 / = (no change at three decimals); empty when unknown."""
    if value is None:
        return ""
    if abs(value) < 0.0005:
        return "="
    return f"{'▲' if value > 0 else '▼'}{abs(value):.3f}"


def format_when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")
