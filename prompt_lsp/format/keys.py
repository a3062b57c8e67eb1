"""What the front matter may hold: every known key with its type and documentation.

One table serves the checks (unknown keys, wrong types), completion and hover.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeySpec:
    name: str
    kind: str  # "string" | "number" | "integer" | "boolean" | "mapping" | "list" | "any" | "string|list" ...
    doc: str
    example: str = ""


def _specs(*specs: KeySpec) -> dict[str, KeySpec]:
    return {s.name: s for s in specs}


TOP_LEVEL = _specs(
    KeySpec(
        "name",
        "string",
        "The prompt's name. Default: the file name without extension.",
        "name: summarize-news",
    ),
    KeySpec(
        "description",
        "string",
        "One line saying what the prompt does.",
        "description: Three-sentence summaries",
    ),
    KeySpec(
        "version",
        "any",
        "A version label of your own. History is keyed by the text's hash, not by this.",
    ),
    KeySpec(
        "model",
        "string",
        "Any litellm model id (`openai/gpt-4o-mini`, `anthropic/claude-3-5-haiku-latest`, `ollama/llama3`…). "
        "Default: `local/gemma-3-270m`, the embedded offline model. `local/<path>.gguf` runs a GGUF file.",
        "model: openai/gpt-4o-mini",
    ),
    KeySpec(
        "config",
        "mapping",
        "Passed through to the model call: `temperature`, `max_tokens`, `top_p`, `stop`…",
    ),
    KeySpec(
        "input",
        "mapping",
        "Declares the template's variables: `schema` (Picoschema) and `default` values.",
    ),
    KeySpec("tokens", "list", 'Special tokens this prompt relies on, e.g. `["<start>", "<end>"]`.'),
    KeySpec(
        "examples",
        "string|list",
        "Examples to evaluate on: a path relative to this file (`.jsonl`, `.json`, `.csv`, `.yaml`) or an inline list "
        "of `{input: {...}, expected: ...}`.",
        "examples: news.examples.jsonl",
    ),
    KeySpec(
        "metrics", "list", "Scores computed for each example; the first one is the headline score."
    ),
    KeySpec("eval", "mapping", "Run settings: `concurrency`, `repeat`, `timeout`, `cache`."),
    KeySpec(
        "template",
        "any",
        "The template language: `jinja2`, `handlebars` (Dotprompt) or `mustache`; Prompty writes "
        "`template: {format: {kind: mustache}}`. Without it the language is recognised from the "
        "file (see the README's formats table).",
        "template: handlebars",
    ),
    # Dotprompt
    KeySpec(
        "output",
        "mapping",
        "Dotprompt: the expected output, `format` (`text`, `json`, …) and `schema` (Picoschema).",
    ),
    KeySpec("variant", "string", "Dotprompt: the variant's name (`name.variant.prompt`)."),
    KeySpec("toolDefs", "list", "Dotprompt: tool definitions written inline."),
    KeySpec("ext", "mapping", "Dotprompt: extension fields (`ext.namespace.key`)."),
    KeySpec("raw", "any", "Dotprompt: the raw front matter (set by Dotprompt itself)."),
    # Prompty compatibility
    KeySpec("inputs", "any", "Prompty's inputs, read as `input.schema` and `input.default`."),
    KeySpec("sample", "any", "Prompty's sample values, read as one inline example."),
    KeySpec("displayName", "string", "Prompty: display name."),
    KeySpec("metadata", "any", "Prompty: free-form metadata."),
    KeySpec("authors", "any", "Prompty: authors."),
    KeySpec("outputs", "any", "Prompty: output declarations (not used)."),
    KeySpec("inputSchema", "any", "Prompty v2: the inputs as a schema (`properties`)."),
    KeySpec("outputSchema", "any", "Prompty v2: the outputs as a schema."),
    KeySpec("kind", "string", "Prompty v2: the kind of agent, e.g. `prompt`."),
    KeySpec("id", "string", "Prompty v2: an identifier."),
    KeySpec("instructions", "string", "Prompty v2: instructions in the front matter."),
    KeySpec("additionalInstructions", "any", "Prompty v2: more instructions."),
    KeySpec("connection", "any", "Prompty: connection settings."),
    KeySpec("parameters", "any", "Prompty v1: parameters."),
    KeySpec("guardrails", "any", "Prompty v2: guardrails."),
    KeySpec("memory", "any", "Prompty v2: memory settings."),
    KeySpec("tools", "any", "Prompty: tools (not used by evaluation)."),
    KeySpec("tags", "any", "Free-form tags."),
)

CONFIG = _specs(
    KeySpec(
        "temperature",
        "number",
        "Sampling temperature, 0–2. 0 makes runs repeatable.",
        "temperature: 0",
    ),
    KeySpec("max_tokens", "integer", "Upper bound on the tokens of each reply.", "max_tokens: 120"),
    KeySpec(
        "top_p",
        "number",
        "Nucleus sampling: keep the smallest token set whose probability reaches top_p (0–1).",
    ),
    KeySpec("top_k", "integer", "Sample among the k most likely tokens."),
    KeySpec("stop", "string|list", "Stop sequences: generation ends before any of them."),
    KeySpec("seed", "integer", "Seed for providers that support repeatable sampling."),
    KeySpec("presence_penalty", "number", "Penalise tokens already present (-2–2)."),
    KeySpec("frequency_penalty", "number", "Penalise frequent tokens (-2–2)."),
    KeySpec("response_format", "any", "Structured output, e.g. `{type: json_object}`."),
    KeySpec("n", "integer", "Number of completions per call."),
    KeySpec("timeout", "number", "Seconds before one call times out."),
    KeySpec(
        "api_base",
        "string",
        "Base URL of the provider (e.g. an Ollama, vLLM or litellm proxy server). Your key "
        "from the environment goes there only if you allowed the host "
        "(PROMPT_LSP_ALLOWED_HOSTS or --allow-host).",
    ),
    KeySpec(
        "api_key",
        "string",
        "Do not write a key here: it is committed with the file. Keep it in the environment "
        "(e.g. OPENAI_API_KEY).",
    ),
    KeySpec("extra_headers", "any", "HTTP headers sent with every call (no tokens here)."),
    KeySpec("reasoning_effort", "string", "For reasoning models: low, medium or high."),
    # Dotprompt aliases
    KeySpec("maxOutputTokens", "integer", "Dotprompt alias of `max_tokens`."),
    KeySpec("topP", "number", "Dotprompt alias of `top_p`."),
    KeySpec("topK", "integer", "Dotprompt alias of `top_k`."),
    KeySpec("stopSequences", "list", "Dotprompt alias of `stop`."),
)

CONFIG_ALIASES = {
    "maxOutputTokens": "max_tokens",
    "topP": "top_p",
    "topK": "top_k",
    "stopSequences": "stop",
}

OUTPUT = _specs(
    KeySpec(
        "format",
        "string",
        "Dotprompt: the output format, `text` or `json` (also `array`, `enum`, `jsonl`, `media`).",
        "format: json",
    ),
    KeySpec("schema", "any", "Dotprompt: the output's schema (Picoschema or JSON Schema)."),
)

INPUT = _specs(
    KeySpec(
        "schema",
        "mapping",
        "Picoschema: one line per variable, `name: type, description`; `name?:` marks it optional; "
        "`name(array, description): type` a list, `name(enum): [A, B]` a choice, `name(object):` "
        "nested fields, `(*): type` any other key. Types: string, integer, number, boolean, array, "
        "object, any, null.",
        "article: string, the article to summarize",
    ),
    KeySpec("default", "mapping", "Default values, merged under every example's input."),
)

EVAL = _specs(
    KeySpec(
        "concurrency",
        "integer",
        "How many model calls run at once. Default 8 (for `local/…` models, as many as the"
        " model decodes together, at most 8).",
        "concurrency: 8",
    ),
    KeySpec(
        "repeat", "integer", "Run every example N times; scores report mean and standard deviation."
    ),
    KeySpec(
        "timeout",
        "number",
        "Seconds before one model call times out. Default 60 (600 for `local/…` models).",
    ),
    KeySpec("cache", "boolean", "Reuse stored responses for identical calls. Default true."),
)

SECTIONS: dict[tuple[str, ...], dict[str, KeySpec]] = {
    (): TOP_LEVEL,
    ("config",): CONFIG,
    ("input",): INPUT,
    ("output",): OUTPUT,
    ("eval",): EVAL,
}

SCHEMA_TYPES = ("string", "integer", "number", "boolean", "array", "object", "any", "enum", "null")

# Prompty's multimodal and conversation input kinds, valid beside the schema types.
PROMPTY_KINDS = ("image", "audio", "file", "thread")
