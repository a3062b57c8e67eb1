"""Which format a prompt file is, and so which template language its body is written in.

Three formats share the `.prompt`/`.prompty` files a user may already have:

- our own `.prompt`: Jinja2, role markers on their own line, text before the first one is user;
- Dotprompt `.prompt` (Google's; Genkit, Firebase): Handlebars with Dotprompt's helpers
  (`{{role "system"}}`, `{{> partial}}`, `{{json x}}`…), rendered by `dotpromptz`;
- `.prompty` (Microsoft's): Jinja2 or Mustache per `template:`, role markers as Prompty reads them
  (text before the first one is system, `developer:`, `user[name="Alice"]:`).

The decision, first rule that applies wins:

1. an explicit front matter key: `template: handlebars|jinja2|mustache` (also `dotprompt`,
   `jinja`), or Prompty's `template: {format: {kind: …}}` / `template: {format: …}`;
2. the workspace setting (`promptLsp.templateLanguage`), unless it is `auto`;
3. a `.prompty` file is Jinja2 (Prompty's default);
4. the content: Handlebars-only constructs (`{{#if}}`, `{{/if}}`, `{{> p}}`, `{{! c}}`, `{{else}}`,
   `{{@root}}`, `{{this}}`, `{{role "x"}}`, `{{json x}}`, `{{~`, `{{{x}}}`) against Jinja-only ones
   (`{%`, `{#`, `{{ x | f }}`, `{{-`), then Dotprompt-only front matter (`output:`, Picoschema's
   `(*)` or `name(type, …)` keys, `config.maxOutputTokens`…, a `googleai/`/`vertexai/` model)
   when the body has no role marker line (`system:` alone on a line is ours, text in Dotprompt);
5. otherwise our own Jinja2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any


class TemplateLanguage(str, Enum):
    JINJA = "jinja2"
    HANDLEBARS = "handlebars"
    MUSTACHE = "mustache"


class Dialect(str, Enum):
    """Whose rules apply to roles, whitespace and undefined variables."""

    PROMPT = "prompt"  # ours
    DOTPROMPT = "dotprompt"
    PROMPTY = "prompty"


@dataclass(frozen=True)
class TemplateFormat:
    dialect: Dialect
    language: TemplateLanguage
    reason: str  # how it was decided, shown in hover and `render`

    @property
    def label(self) -> str:
        names = {
            (Dialect.PROMPT, TemplateLanguage.JINJA): "prompt (Jinja2)",
            (Dialect.DOTPROMPT, TemplateLanguage.HANDLEBARS): "Dotprompt (Handlebars)",
            (Dialect.PROMPTY, TemplateLanguage.JINJA): "Prompty (Jinja2)",
            (Dialect.PROMPTY, TemplateLanguage.MUSTACHE): "Prompty (Mustache)",
        }
        return names.get(
            (self.dialect, self.language), f"{self.dialect.value} ({self.language.value})"
        )


DEFAULT_FORMAT = TemplateFormat(Dialect.PROMPT, TemplateLanguage.JINJA, "default")

# Spellings accepted for the explicit key and the setting.
_LANGUAGE_NAMES = {
    "jinja2": TemplateLanguage.JINJA,
    "jinja": TemplateLanguage.JINJA,
    "handlebars": TemplateLanguage.HANDLEBARS,
    "hbs": TemplateLanguage.HANDLEBARS,
    "dotprompt": TemplateLanguage.HANDLEBARS,
    "mustache": TemplateLanguage.MUSTACHE,
}
LANGUAGE_CHOICES = ("auto", "jinja2", "handlebars", "mustache")

_HANDLEBARS_ONLY = re.compile(
    r"\{\{~?\s*(?:[#/>!^]|else\s*~?\}\}|@|this\b|role\s+[\"']|json\s|history\s*~?\}\}"
    r"|media\s+url=|section\s+[\"']|ifEquals\s|unlessEquals\s)"
    r"|\{\{\{|\{\{~|~\}\}"
    # a helper call `{{json data}}`, `{{media url=u}}`: words side by side are a Jinja error
    r"|\{\{\s*(?!(?:not|if)\b)[A-Za-z_][\w.\-]*\s+(?!(?:and|or|if|else|in|is|not)\b)"
    r"[\w@\"'.(][^{}\n|%]*\}\}"
)
_JINJA_ONLY = re.compile(r"\{%|\{#|\{\{-|-\}\}|\{\{[^{}\n]*[^|]\|[^|][^{}\n]*\}\}")
# A line `system:`/`user:`/`assistant:` alone: our roles (plain text in Dotprompt).
_ROLE_LINE = re.compile(r"(?im)^[ \t]*(?:system|user|assistant)[ \t]*:[ \t]*$")
_DOTPROMPT_MODELS = ("googleai/", "vertexai/", "google-genai/")
_DOTPROMPT_CONFIG = frozenset(
    {"maxOutputTokens", "topK", "topP", "stopSequences", "candidateCount"}
)


def detect_format(
    metadata: dict[str, Any],
    body: str,
    *,
    explicit: str | None = None,
    path: str | None = None,
    setting: str | None = None,
) -> TemplateFormat:
    """The format of a file with front matter `metadata` (as written: no aliases resolved) and
    template `body`; `explicit` is the language its `template:` key names
    (`PromptSettings.template`); `path` (its name is enough) tells a `.prompty` file; `setting`
    is the workspace's choice."""
    prompty = bool(path) and str(path).lower().endswith(".prompty")
    named = _LANGUAGE_NAMES.get((explicit or "").strip().lower())
    if named is not None:
        return _format(named, prompty, "the front matter's `template:` key")
    chosen = _LANGUAGE_NAMES.get((setting or "").strip().lower())
    if chosen is not None:
        return _format(chosen, prompty, "the workspace setting `promptLsp.templateLanguage`")
    if prompty:
        return TemplateFormat(Dialect.PROMPTY, TemplateLanguage.JINJA, "a `.prompty` file")
    handlebars = len(_HANDLEBARS_ONLY.findall(body))
    jinja = len(_JINJA_ONLY.findall(body))
    if handlebars > jinja:
        return TemplateFormat(
            Dialect.DOTPROMPT, TemplateLanguage.HANDLEBARS, "Handlebars syntax in the body"
        )
    if jinja:
        return TemplateFormat(Dialect.PROMPT, TemplateLanguage.JINJA, "Jinja syntax in the body")
    if _dotprompt_front_matter(metadata) and not _ROLE_LINE.search(body):
        return TemplateFormat(
            Dialect.DOTPROMPT, TemplateLanguage.HANDLEBARS, "Dotprompt keys in the front matter"
        )
    return DEFAULT_FORMAT


def _format(language: TemplateLanguage, prompty: bool, reason: str) -> TemplateFormat:
    if prompty:
        return TemplateFormat(Dialect.PROMPTY, language, reason)
    if language is TemplateLanguage.HANDLEBARS:
        return TemplateFormat(Dialect.DOTPROMPT, language, reason)
    return TemplateFormat(Dialect.PROMPT, language, reason)


def _dotprompt_front_matter(metadata: dict[str, Any]) -> bool:
    if isinstance(metadata.get("output"), dict):
        return True
    model = metadata.get("model")
    if isinstance(model, str) and model.startswith(_DOTPROMPT_MODELS):
        return True
    config = metadata.get("config")
    if isinstance(config, dict) and _DOTPROMPT_CONFIG & set(config):
        return True
    input_block = metadata.get("input")
    schema = input_block.get("schema") if isinstance(input_block, dict) else None
    return isinstance(schema, dict) and _has_picoschema_markers(schema)


def _has_picoschema_markers(schema: dict[str, Any], depth: int = 0) -> bool:
    """Picoschema's own spellings: `(*)`, `name(array)`, `name(enum, …)`, `name(object)`."""
    if depth > 8:
        return False
    for key, value in schema.items():
        if isinstance(key, str) and "(" in key and key.endswith(")"):
            return True
        if isinstance(value, dict) and _has_picoschema_markers(value, depth + 1):
            return True
    return False
