"""The deterministic train / validation / test split of a prompt's examples."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from prompt_lsp.format.examples import Example

DEFAULT_SPLIT = (0.5, 0.25, 0.25)
MIN_EXAMPLES = 8  # fewer than this and no held-out score means anything
SMALL_POOL = 16  # train + validation smaller than this: cross-validate (see `Split`)


class SplitError(ValueError):
    """The examples cannot be split as asked (the message is one line for the user)."""


@dataclass(frozen=True)
class Split:
    """Example ids per part. With a small pool (`cross_validate`), every candidate is validated
    on all train+validation examples it does not contain as a demonstration (leave-the-
    demonstrations-out), so each example is used for choosing without being its own answer."""

    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]
    cross_validate: bool = False

    @property
    def demo_pool(self) -> tuple[str, ...]:
        """The examples demonstrations may be drawn from (never the test split)."""
        return (*self.train, *self.validation) if self.cross_validate else self.train

    def validation_for(self, demo_ids: tuple[str, ...]) -> tuple[str, ...]:
        if not self.cross_validate:
            return self.validation
        used = set(demo_ids)
        return tuple(i for i in (*self.train, *self.validation) if i not in used)


def parse_split(value: str) -> tuple[float, float, float]:
    """`0.5/0.25/0.25` (or commas) → fractions that sum to 1."""
    try:
        parts = tuple(float(p) for p in value.replace(",", "/").split("/"))
    except ValueError:
        raise SplitError(
            f"--split must be three fractions like 0.5/0.25/0.25, got {value!r}"
        ) from None
    if len(parts) != 3 or any(p <= 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise SplitError(f"--split must be three positive fractions that sum to 1, got {value!r}")
    return parts[0], parts[1], parts[2]


def split_examples(
    examples: list[Example], fractions: tuple[float, float, float] = DEFAULT_SPLIT, seed: int = 0
) -> Split:
    """Order the examples by a seeded hash of their ids (the same split on every run and
    machine, unchanged by reordering the file), then cut."""
    usable = [e for e in examples if e.has_expected]
    if len(usable) < MIN_EXAMPLES:
        raise SplitError(
            f"optimize needs at least {MIN_EXAMPLES} examples with an expected value, "
            f"found {len(usable)}"
        )
    ordered = sorted(usable, key=lambda e: hashlib.sha256(f"{seed}:{e.id}".encode()).hexdigest())
    ids = [e.id for e in ordered]
    n_test = max(2, round(len(ids) * fractions[2]))
    n_validation = max(1, round(len(ids) * fractions[1]))
    test = tuple(ids[:n_test])
    validation = tuple(ids[n_test : n_test + n_validation])
    train = tuple(ids[n_test + n_validation :])
    small = len(train) + len(validation) < SMALL_POOL or not train
    return Split(train, validation, test, cross_validate=small)
