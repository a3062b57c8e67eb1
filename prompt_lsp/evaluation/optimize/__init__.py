"""Search for a better prompt: candidate generators (`edits`), the honest split (`split`), the
search and its report (`engine`), reflective rewriting through gepa (`reflect`)."""

from prompt_lsp.evaluation.optimize.edits import GENERATORS
from prompt_lsp.evaluation.optimize.engine import (
    DEFAULT_BUDGET,
    REFLECTION,
    Candidate,
    OptimizeProgress,
    OptimizeReport,
    OptimizeSettings,
    apply_winner,
    optimize_prompt,
    record_applied,
)
from prompt_lsp.evaluation.optimize.split import DEFAULT_SPLIT, SplitError, parse_split

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_SPLIT",
    "GENERATORS",
    "REFLECTION",
    "Candidate",
    "OptimizeProgress",
    "OptimizeReport",
    "OptimizeSettings",
    "SplitError",
    "apply_winner",
    "optimize_prompt",
    "parse_split",
    "record_applied",
]
