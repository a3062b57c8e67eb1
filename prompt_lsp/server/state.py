"""Per-document state kept by the server, and the server's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_lsp.checks.findings import Finding
from prompt_lsp.format.language import LANGUAGE_CHOICES
from prompt_lsp.format.model import PromptDocument
from prompt_lsp.server.convert import Positions


@dataclass
class Settings:
    """The `promptLsp` settings section."""

    default_model: str | None = None
    debounce_ms: int = 150
    history_path: str | None = None
    concurrency: int | None = None
    cache: bool = True
    template_language: str | None = None  # `auto` (None), `jinja2`, `handlebars`, `mustache`

    @classmethod
    def from_client(cls, raw: Any) -> Settings:
        """Tolerant: wrong types are ignored, `promptLsp` may be nested or not."""
        if not isinstance(raw, dict):
            return cls()
        if isinstance(raw.get("promptLsp"), dict):
            raw = raw["promptLsp"]
        settings = cls()
        if isinstance(raw.get("defaultModel"), str) and raw["defaultModel"].strip():
            settings.default_model = raw["defaultModel"].strip()
        debounce = raw.get("debounce")
        if (
            isinstance(debounce, (int, float))
            and not isinstance(debounce, bool)
            and 0 <= debounce <= 10_000
        ):
            settings.debounce_ms = int(debounce)
        if isinstance(raw.get("historyPath"), str) and raw["historyPath"].strip():
            settings.history_path = raw["historyPath"].strip()
        concurrency = raw.get("concurrency")
        if isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency > 0:
            settings.concurrency = concurrency
        if isinstance(raw.get("cache"), bool):
            settings.cache = raw["cache"]
        language = raw.get("templateLanguage")
        if isinstance(language, str) and language.strip().lower() in LANGUAGE_CHOICES[1:]:
            settings.template_language = language.strip().lower()
        return settings


@dataclass
class DocumentState:
    """One version of one open `.prompt` document, parsed."""

    uri: str
    version: int | None
    doc: PromptDocument
    path: Path | None
    positions: Positions
    findings: list[Finding] | None = None  # set once checked
    caches: dict[str, Any] = field(default_factory=dict)  # per-version results of features
