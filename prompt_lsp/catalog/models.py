"""What is known about models: litellm's bundled price and context-window map, read as JSON.

litellm itself is never imported here (it takes seconds); its package directory is located with
`importlib.util.find_spec`, which does not execute the package. Everything is loaded on first use
and cached for the life of the process, so lookups on the typing path cost microseconds.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "local/gemma-3-270m"  # the model of a file that names none
LOCAL_PROVIDER = "local"
DEFAULT_MODEL_CONTEXT = 32768

_MAP_FILE = "model_prices_and_context_window_backup.json"
_PROVIDERS_FILE = "provider_endpoints_support_backup.json"

# Prefixes people write in `model:` that litellm routes, whether or not the bundled map has a
# model under them (Ollama, vLLM and proxies serve whatever the user has deployed).
_COMMON_PREFIXES = frozenset(
    {
        "openai",
        "anthropic",
        "azure",
        "bedrock",
        "vertex_ai",
        "gemini",
        "ollama",
        "ollama_chat",
        "vllm",
        "hosted_vllm",
        "openrouter",
        "groq",
        "mistral",
        "together_ai",
        "huggingface",
        "litellm_proxy",
        "deepseek",
        "xai",
        "fireworks_ai",
        "cohere",
        LOCAL_PROVIDER,
    }
)

# litellm_provider values in the map whose models are addressed with another prefix.
_PROVIDER_ALIASES = {
    "text-completion-openai": "openai",
    "text-completion-codestral": "codestral",
    "text-completion-inception": "inception",
    "azure_text": "azure",
    "bedrock_converse": "bedrock",
    "cohere_chat": "cohere",
    "amazon_nova": "amazon-nova",
}


@dataclass(frozen=True)
class ModelInfo:
    """One model as litellm's map describes it (limits in tokens, prices in USD per token)."""

    id: str
    provider: str
    max_input_tokens: int | None
    max_output_tokens: int | None
    input_cost_per_token: float | None
    output_cost_per_token: float | None
    mode: str | None

    def price_per_million(self) -> tuple[float | None, float | None]:
        """USD per one million input and output tokens (None where the map has no price)."""
        return _per_million(self.input_cost_per_token), _per_million(self.output_cost_per_token)

    def describe(self) -> str:
        """One markdown paragraph for hover: provider, mode, context window and price."""
        parts = [f"**{self.provider or 'unknown provider'}**"]
        if self.mode:
            parts.append(self.mode)
        parts.append(_describe_limits(self.max_input_tokens, self.max_output_tokens))
        parts.append(self._describe_price())
        return " · ".join(parts)

    def _describe_price(self) -> str:
        price_in, price_out = self.price_per_million()
        if self.provider == LOCAL_PROVIDER and not price_in and not price_out:
            return "free (runs locally)"
        if price_in is None and price_out is None:
            return "price unknown"
        return f"{_money(price_in)} / {_money(price_out)} per 1M input / output tokens"


def _per_million(cost: float | None) -> float | None:
    return None if cost is None else round(cost * 1_000_000, 6)


def _money(value: float | None) -> str:
    if value is None:
        return "?"
    if value == 0 or value >= 0.01:
        return f"${value:,.2f}"
    return f"${value:.4g}"


def _describe_limits(max_in: int | None, max_out: int | None) -> str:
    window = f"context {max_in:,} tokens" if max_in else "context window unknown"
    return f"{window} (max output {max_out:,})" if max_out else window


# --------------------------------------------------------------------------- loading


def litellm_dir() -> Path | None:
    """litellm's package directory, found without importing litellm."""
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _read_json(name: str) -> dict[str, Any]:
    base = litellm_dir()
    if base is None:
        return {}
    try:
        with open(base / name, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _as_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _model_from_entry(key: str, entry: dict[str, Any]) -> ModelInfo:
    provider = entry.get("litellm_provider")
    if not isinstance(provider, str):
        provider = key.split("/", 1)[0] if "/" in key else ""
    mode = entry.get("mode")
    return ModelInfo(
        id=key,
        provider=provider,
        max_input_tokens=_as_int(entry.get("max_input_tokens", entry.get("max_tokens"))),
        max_output_tokens=_as_int(entry.get("max_output_tokens")),
        input_cost_per_token=_as_float(entry.get("input_cost_per_token")),
        output_cost_per_token=_as_float(entry.get("output_cost_per_token")),
        mode=mode if isinstance(mode, str) else None,
    )


def _local_model(model_id: str, context: int | None) -> ModelInfo:
    return ModelInfo(
        id=model_id,
        provider=LOCAL_PROVIDER,
        max_input_tokens=context,
        max_output_tokens=None,
        input_cost_per_token=0.0,
        output_cost_per_token=0.0,
        mode="completion",
    )


def _prefixes_for(provider: str) -> tuple[str, ...]:
    """The `prefix/` forms a user may write for a model the map lists under `provider`."""
    prefixes = [provider]
    if provider in _PROVIDER_ALIASES:
        prefixes.append(_PROVIDER_ALIASES[provider])
    elif provider.endswith("models"):  # "vertex_ai-language-models" -> "vertex_ai"
        prefixes.append(provider.split("-", 1)[0])
    return tuple(dict.fromkeys(p for p in prefixes if p))


@dataclass(frozen=True)
class _Catalog:
    models: tuple[ModelInfo, ...]
    by_id: dict[str, ModelInfo]
    by_lower: dict[str, ModelInfo]
    # (prefix, lowercased name after the prefix) -> model, for "openai/gpt-4o-mini" style ids
    by_prefix: dict[tuple[str, str], ModelInfo]
    providers: frozenset[str]


def _index_by_prefix(models: Iterable[ModelInfo]) -> dict[tuple[str, str], ModelInfo]:
    index: dict[tuple[str, str], ModelInfo] = {}
    for info in models:
        for prefix in _prefixes_for(info.provider):
            head, _, rest = info.id.partition("/")
            name = rest if rest and head == prefix else info.id
            index.setdefault((prefix.lower(), name.lower()), info)
    return index


@functools.cache
def _catalog() -> _Catalog:
    raw = _read_json(_MAP_FILE)
    models = [
        _model_from_entry(key, entry)
        for key, entry in raw.items()
        if key != "sample_spec" and isinstance(entry, dict)
    ]
    models.append(_local_model(DEFAULT_MODEL, DEFAULT_MODEL_CONTEXT))
    by_id = {info.id: info for info in models}
    by_lower: dict[str, ModelInfo] = {}
    for info in models:
        by_lower.setdefault(info.id.lower(), info)
    endpoint_providers = _read_json(_PROVIDERS_FILE).get("providers")
    providers = set(_COMMON_PREFIXES)
    providers.update(info.provider for info in models if info.provider)
    if isinstance(endpoint_providers, dict):
        providers.update(p for p in endpoint_providers if "/" not in p)
    providers.update(prefix for info in models for prefix in _prefixes_for(info.provider))
    providers.discard("one of https://docs.litellm.ai/docs/providers")
    return _Catalog(
        models=tuple(models),
        by_id=by_id,
        by_lower=by_lower,
        by_prefix=_index_by_prefix(models),
        providers=frozenset(p.lower() for p in providers),
    )


def known_providers() -> frozenset[str]:
    """Every litellm provider name and common `model:` prefix (lowercase)."""
    return _catalog().providers


def __getattr__(name: str) -> Any:
    # KNOWN_PROVIDERS is computed from the map on first access, not at import time.
    if name == "KNOWN_PROVIDERS":
        return known_providers()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- lookups


def all_models() -> list[ModelInfo]:
    """Every model in litellm's map (minus its `sample_spec`), plus the embedded local model."""
    return list(_catalog().models)


@functools.lru_cache(maxsize=4096)
def lookup_model(model_id: str) -> ModelInfo | None:
    """The model a `model:` value names, or None.

    Exact map keys win; then `provider/name` where the map keys the model as `name` (the result
    then carries the id as written); then `local/<file>.gguf`; then a case-insensitive key match.
    """
    model_id = model_id.strip()
    if not model_id:
        return None
    catalog = _catalog()
    hit = catalog.by_id.get(model_id)
    if hit is not None:
        return hit
    prefix, slash, rest = model_id.partition("/")
    if slash and rest:
        if prefix.lower() == LOCAL_PROVIDER and rest.lower().endswith(".gguf"):
            return _local_model(model_id, None)
        via_prefix = catalog.by_prefix.get((prefix.lower(), rest.lower()))
        if via_prefix is not None:
            return replace(via_prefix, id=model_id)
    return catalog.by_lower.get(model_id.lower())


def is_known_model(model_id: str) -> bool:
    """Whether litellm can route `model_id`: a known model, or a known provider prefix.

    `local/` is the exception: only the embedded model and `.gguf` files can run locally.
    """
    if lookup_model(model_id) is not None:
        return True
    prefix, slash, rest = model_id.strip().partition("/")
    prefix = prefix.lower()
    return bool(slash and rest) and prefix != LOCAL_PROVIDER and prefix in known_providers()


# --------------------------------------------------------------------------- did-you-mean


@functools.cache
def _provider_names(prefix: str) -> dict[str, str]:
    """Lowercased `prefix/name` -> `prefix/name` as the map spells the name, for one provider."""
    return {
        f"{prefix}/{name}": f"{prefix}/{_original_name(info.id, prefix)}"
        for (p, name), info in _catalog().by_prefix.items()
        if p == prefix
    }


def _original_name(key: str, prefix: str) -> str:
    head, _, rest = key.partition("/")
    return rest if rest and head.lower() == prefix else key


@functools.cache
def _all_ids() -> dict[str, str]:
    """Lowercased id -> id, for every model in the catalog."""
    return {info.id.lower(): info.id for info in _catalog().models}


@functools.cache
def _bare_ids() -> dict[str, str]:
    """Lowercased id -> id, for the ids without a "/" (a seventh of the map: 5x faster)."""
    return {low: key for low, key in _all_ids().items() if "/" not in low}


def _close(word: str, choices: dict[str, str], n: int) -> list[str]:
    return [choices[m] for m in difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)]


@functools.lru_cache(maxsize=1024)
def _suggest(model_id: str, n: int) -> tuple[str, ...]:
    wanted = model_id.strip().lower()
    prefix, slash, rest = wanted.partition("/")
    if not slash:
        return tuple(_close(wanted, _bare_ids(), n) or _close(wanted, _all_ids(), n))
    providers = known_providers()
    if prefix not in providers:
        fixed = difflib.get_close_matches(prefix, sorted(providers), n=1, cutoff=0.6)
        if not fixed:
            return tuple(_close(wanted, _all_ids(), n))
        prefix = fixed[0]
        if lookup_model(f"{prefix}/{rest}") is not None:
            return (f"{prefix}/{model_id.strip().partition('/')[2]}",)
    names = _provider_names(prefix)
    found = _close(f"{prefix}/{rest}", names, n)
    return tuple(found) if found else tuple(_close(wanted, _all_ids(), n))


@functools.lru_cache(maxsize=1024)
def near_miss(model_id: str) -> str | None:
    """The catalog model a routable but unlisted `provider/name` most likely meant: one slip
    away among that provider's listed models, the slip not in a digit (`gpt-4o-minii` means
    `gpt-4o-mini`; `gpt-5.2` may be a model newer than the list)."""
    from prompt_lsp.format.spelling import edit_distance

    if lookup_model(model_id) is not None:
        return None
    prefix, slash, rest = model_id.strip().partition("/")
    prefix = prefix.lower()
    if not (slash and rest) or prefix == LOCAL_PROVIDER or prefix not in known_providers():
        return None
    wanted = f"{prefix}/{rest.lower()}"
    for low, spelled in _provider_names(prefix).items():
        if edit_distance(wanted, low, 1) == 1 and _letters(wanted) != _letters(low):
            return spelled
    return None


def _letters(text: str) -> str:
    return "".join(c for c in text if not c.isdigit())


def suggest_models(model_id: str, n: int = 3) -> list[str]:
    """Did-you-mean candidates for an unknown model id, in the same `provider/` form as written.

    With a known provider prefix only that provider's models are compared (fast and relevant);
    a misspelt prefix is corrected first.
    """
    return list(_suggest(model_id, n))


# --------------------------------------------------------------------------- completion


@dataclass(frozen=True)
class _Entry:
    lower: str
    tails: str  # "\n" + every part after a "/", joined by "\n": one `in` test per entry
    info: ModelInfo


def _rank_key(info: ModelInfo) -> tuple[bool, bool, int, str]:
    return (info.id != DEFAULT_MODEL, info.mode != "chat", len(info.id), info.id)


def _entries(models: Iterable[ModelInfo]) -> tuple[_Entry, ...]:
    ordered = sorted(models, key=_rank_key)
    return tuple(_Entry(m.id.lower(), _tails(m.id.lower()), m) for m in ordered)


def _tails(lower_id: str) -> str:
    parts = lower_id.split("/")
    return "".join("\n" + "/".join(parts[i:]) for i in range(1, len(parts)))


@functools.cache
def _completion_pool() -> tuple[_Entry, ...]:
    return _entries(_catalog().models)


@functools.cache
def _provider_pool(prefix: str) -> tuple[_Entry, ...]:
    """`prefix/name` forms of the models the map keys without that prefix (e.g. openai/gpt-4o)."""
    catalog = _catalog()
    qualified = [
        replace(info, id=f"{prefix}/{_original_name(info.id, prefix)}")
        for (p, _name), info in catalog.by_prefix.items()
        if p == prefix and not info.id.lower().startswith(prefix + "/")
    ]
    return _entries(qualified)


def _scan(pool: tuple[_Entry, ...], wanted: str, limit: int, tiers: list[list[ModelInfo]]) -> None:
    starts, tails, anywhere = tiers
    needle = "\n" + wanted
    for entry in pool:
        if entry.lower.startswith(wanted):
            starts.append(entry.info)
            if len(starts) >= limit:
                return
        elif len(tails) < limit and needle in entry.tails:
            tails.append(entry.info)
        elif len(anywhere) < limit and wanted in entry.lower:
            anywhere.append(entry.info)


@functools.lru_cache(maxsize=512)
def _complete(wanted: str, limit: int) -> tuple[ModelInfo, ...]:
    pool = _completion_pool()
    if not wanted:
        return tuple(entry.info for entry in pool[:limit])
    tiers: list[list[ModelInfo]] = [[], [], []]
    prefix, slash, _ = wanted.partition("/")
    if slash and prefix in known_providers():
        _scan(_provider_pool(prefix), wanted, limit, tiers)
    _scan(pool, wanted, limit, tiers)
    seen: set[str] = set()
    ranked: list[ModelInfo] = []
    for info in (info for tier in tiers for info in tier):
        if info.id not in seen:  # an id can be in both pools; keep its best-ranked copy
            seen.add(info.id)
            ranked.append(info)
    return tuple(ranked[:limit])


def complete_models(prefix: str, limit: int = 100) -> list[ModelInfo]:
    """Models for completing a `model:` value, best first.

    Ids starting with `prefix` come first, then ids with a part after a "/" starting with it, then
    ids containing it; within each, the default model, then chat models, then shorter ids.
    """
    return list(_complete(prefix.strip().lower(), limit))
