"""Checks of Dotprompt partials `{{> name}}`: the file `_name.prompt` is there, and partials do
not include each other in a circle (Dotprompt refuses to render that)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prompt_lsp.checks.findings import Finding, Severity
from prompt_lsp.format.language import TemplateLanguage
from prompt_lsp.format.model import PromptDocument
from prompt_lsp.format.partials import PartialFiles


def check_partials(doc: PromptDocument, path: Path | None = None) -> Iterator[Finding]:
    where = doc.path or (str(path) if path else None)
    if doc.template_format.language is not TemplateLanguage.HANDLEBARS or not where:
        return
    files = PartialFiles(where)
    for use in doc.partials:
        path = files.path(use.name)
        if path is None or not path.is_file():
            expected = f"_{use.name.rpartition('/')[2]}.prompt"
            yield Finding(
                "partial-not-found",
                Severity.WARNING,
                use.range,
                f"Partial '{use.name}' not found: Dotprompt reads it from `{expected}` beside "
                "this file (or the application registers it).",
            )
            continue
        cycle = files.cycle(use.name)
        if cycle:
            yield Finding(
                "partial-cycle",
                Severity.ERROR,
                use.range,
                f"Partials include each other in a circle: {' → '.join(cycle)}.",
            )
