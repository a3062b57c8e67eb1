"""Dotprompt partials: where `{{> name}}` is found, and which partials a partial includes.

This is the one place in format/ that reads files: a partial is part of the template, as
Dotprompt's directory store reads it. Reads stay in the prompt's own folder and are bounded.
"""

from __future__ import annotations

import re
from pathlib import Path

MAX_PARTIAL_BYTES = 1_000_000
MAX_PARTIAL_DEPTH = 32
_PARTIAL_NAME = re.compile(r"^[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+)*$")


class PartialFiles:
    """Dotprompt partials as its directory store keeps them: `{{> name}}` is `_name.prompt`
    beside the prompt (`{{> dir/name}}` is `dir/_name.prompt`), never outside that folder."""

    def __init__(self, prompt_path: str | None) -> None:
        self.folder = Path(prompt_path).resolve().parent if prompt_path else None

    def path(self, name: str) -> Path | None:
        if self.folder is None or not _PARTIAL_NAME.match(name):
            return None
        folder, _, base = name.rpartition("/")
        candidate = (self.folder / folder / f"_{base}.prompt").resolve()
        if not candidate.is_relative_to(self.folder):
            return None
        return candidate

    def read(self, name: str) -> str | None:
        path = self.path(name)
        if path is None or not path.is_file():
            return None
        try:
            if path.stat().st_size > MAX_PARTIAL_BYTES:
                return None
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def includes(self, name: str) -> list[str]:
        """The partials that partial `name` includes itself."""
        from prompt_lsp.format.handlebars import partial_names

        source = self.read(name)
        return partial_names(source) if source is not None else []

    def cycle(self, name: str) -> list[str] | None:
        """A chain `name → … → name` of partials that include each other, if there is one."""

        def walk(current: str, chain: list[str]) -> list[str] | None:
            if len(chain) > MAX_PARTIAL_DEPTH:
                return None
            for child in self.includes(current):
                if child == name:
                    return [*chain, child]
                if child not in chain:
                    found = walk(child, [*chain, child])
                    if found:
                        return found
            return None

        return walk(name, [name])
