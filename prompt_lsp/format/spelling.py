"""Did-you-mean by edit distance: a suggestion is a few typing slips away, not merely similar.

`difflib`'s ratio finds `template` for `temprature` (0.78); a slip count does not: `temperature`
is one insertion away, `template` five edits. Case is ignored."""

from __future__ import annotations

from collections.abc import Iterable


def edit_distance(a: str, b: str, limit: int | None = None) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours turning `a` into `b`
    (optimal string alignment). With `limit`, any answer above it is `limit + 1` (computed
    faster: rows stop once every cell exceeds it)."""
    if limit is not None and abs(len(a) - len(b)) > limit:
        return limit + 1
    before: list[int] | None = None
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if before is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], before[j - 2] + 1)
        if limit is not None and min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return previous[-1]


def allowed_slips(word: str) -> int:
    """How many slips a word of this length may hold and still be recognised: 1 for short
    words, 2 from 6 letters, 3 from 12."""
    return 1 if len(word) < 6 else 2 if len(word) < 12 else 3


def close_matches(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates at most `allowed_slips(word)` slips from `word`, nearest first."""
    wanted = word.lower()
    limit = allowed_slips(wanted)
    scored = []
    for order, candidate in enumerate(candidates):
        distance = edit_distance(wanted, candidate.lower(), limit)
        if distance <= limit and candidate.lower() != wanted:
            scored.append((distance, order, candidate))
    scored.sort()
    return [candidate for _, _, candidate in scored[:n]]
