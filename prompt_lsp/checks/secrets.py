"""`secret-in-file`: a literal key in the front matter would be committed with the prompt."""

from __future__ import annotations

from collections.abc import Iterator

from prompt_lsp.checks.findings import Finding, Severity
from prompt_lsp.format.model import PromptDocument
from prompt_lsp.format.secrets import find_secrets, front_matter_text, might_hold_secrets


def check_secrets(doc: PromptDocument) -> Iterator[Finding]:
    """One warning per literal key, at the literal (for an alias, at its anchored value)."""
    if not doc.has_front_matter:
        return
    located = front_matter_text(doc.text)
    names = {part for entry in doc.entries for part in entry.path if isinstance(part, str)}
    if located is None or not might_hold_secrets(located[0], names):
        return
    for secret in find_secrets(located[0], first_line=1):
        yield Finding(
            "secret-in-file",
            Severity.WARNING,
            secret.range,
            f"`{secret.path}` holds a literal key: it is committed and shared with this file. "
            "Keep keys in the environment (e.g. export OPENAI_API_KEY) and remove it here; "
            "prompt-lsp never stores it.",
        )
