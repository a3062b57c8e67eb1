"""Everything that touches litellm: loading it, calling models, reading its errors.

litellm takes seconds to import, so nothing imports it at module level: `load_litellm()` does,
on the first model call of a run that needs one (a fully cached run never does). Before the
import, `LITELLM_LOCAL_MODEL_COST_MAP` makes it read its bundled price map instead of fetching
one, and its telemetry and debug banners are turned off: the language server owns stdout.

API keys stay where litellm reads them (environment variables), and go only where the user
allows (`endpoint_problem`); a prompt's literal keys are found and kept out of storage by
`format.secrets`.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import importlib.util
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from prompt_lsp.catalog.models import LOCAL_PROVIDER
from prompt_lsp.format.secrets import is_secret_name

# The variable to name when a provider's key is missing (litellm may list several).
PROVIDER_KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "text-completion-openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "groq": "GROQ_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "cohere": "COHERE_API_KEY",
    "cohere_chat": "COHERE_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "xai": "XAI_API_KEY",
    "fireworks_ai": "FIREWORKS_AI_API_KEY",
    "perplexity": "PERPLEXITYAI_API_KEY",
    "azure": "AZURE_API_KEY",
    "huggingface": "HF_TOKEN",
    "replicate": "REPLICATE_API_KEY",
    "deepinfra": "DEEPINFRA_API_KEY",
    "cerebras": "CEREBRAS_API_KEY",
}
_MISSING_KEY_TEXT = re.compile(
    r"missing credentials|api[_ ]?key.*(must be set|is not set|missing|not found|required)"
    r"|(missing|no) .*api[_ ]?key|no key is set|set the `?[A-Z_]+_API_KEY",
    re.I,
)
_LITELLM_PREFIX = re.compile(r"^(litellm\.)?[A-Za-z]*(Error|Exception|Timeout)\s*:\s*")

_load_lock = threading.Lock()
_custom_handlers: dict[str, Any] = {}


@dataclass(frozen=True)
class ModelReply:
    """A model's answer with what it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


# (model, messages, config, timeout_s) -> reply. The runner calls models only through this.
Transport = Callable[[str, list[dict[str, str]], dict[str, Any], float], Awaitable[ModelReply]]


# ---------------------------------------------------------------------------- loading litellm


def load_litellm() -> Any:
    """Import and configure litellm once; register our custom providers (`local`)."""
    with _load_lock:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.telemetry = False
        litellm.suppress_debug_info = True
        litellm.set_verbose = False
        if LOCAL_PROVIDER not in _custom_handlers:
            from prompt_lsp.evaluation.local_model import make_local_provider

            _custom_handlers[LOCAL_PROVIDER] = make_local_provider()
        _sync_provider_map(litellm)
        return litellm


def register_provider(name: str, handler: Any) -> None:
    """Register a litellm `CustomLLM` under `name/` (used by tests and benchmarks)."""
    litellm = load_litellm()
    with _load_lock:
        _custom_handlers[name] = handler
        _sync_provider_map(litellm)


def unregister_provider(name: str) -> None:
    litellm = load_litellm()
    with _load_lock:
        _custom_handlers.pop(name, None)
        _sync_provider_map(litellm)


def _sync_provider_map(litellm: Any) -> None:
    others = [
        item for item in litellm.custom_provider_map if item["provider"] not in _custom_handlers
    ]
    litellm.custom_provider_map = others + [
        {"provider": name, "custom_handler": handler} for name, handler in _custom_handlers.items()
    ]


def litellm_is_loaded() -> bool:
    import sys

    return "litellm" in sys.modules


# ---------------------------------------------------------------------------- where keys go

ALLOWED_HOSTS_VARIABLE = "PROMPT_LSP_ALLOWED_HOSTS"
_ENDPOINT_KEY = re.compile(r"(^|_)(api_base|base_url|url|endpoint|host)$", re.I)
_ENVIRONMENT_REFERENCE = re.compile(r"^\s*os\.environ/(\S+)")


def allowed_hosts(extra: Iterable[str] = ()) -> set[str]:
    """Hosts the *user* allowed to receive keys from the environment: the
    PROMPT_LSP_ALLOWED_HOSTS variable (comma- or space-separated) and `extra` (the CLI's
    `--allow-host`, the editor's user setting). Never anything a prompt file says."""
    names = [*re.split(r"[,\s]+", os.environ.get(ALLOWED_HOSTS_VARIABLE, "")), *extra]
    return {name.strip().lower().rstrip(".") for name in names if name and name.strip()}


def file_endpoints(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(config key, host) of every endpoint the prompt's config chooses (`api_base`,
    `base_url`, …)."""
    found = []
    for key, value in config.items():
        if not _ENDPOINT_KEY.search(str(key)) or not isinstance(value, str) or not value.strip():
            continue
        text = value.strip()
        host = urlsplit(text if "//" in text else f"//{text}").hostname or text
        found.append((str(key), host.lower().rstrip(".")))
    return found


def environment_key_variables(model: str) -> list[str]:
    """The environment variables holding a key that a call of `model` would send: its
    provider's (`OPENAI_API_KEY`, `AZURE_AD_TOKEN`, …); every key-like one when the provider is
    unknown."""
    provider = provider_of(model)
    set_keys = [n for n, v in os.environ.items() if v.strip() and is_secret_name(n)]
    if not provider:
        return sorted(set_keys)
    prefix = provider.upper().replace("-", "_") + "_"
    preferred = PROVIDER_KEY_VARIABLES.get(provider)
    return sorted(n for n in set_keys if n.startswith(prefix) or n == preferred)


def endpoint_problem(
    model: str, config: Mapping[str, Any], extra_allowed: Iterable[str] = ()
) -> str | None:
    """Why a call of `model` with the prompt's `config` must not be made, or None.

    A key from the environment goes only to the provider's own endpoint or to a host the user
    allowed: a prompt file (perhaps from a repository someone else wrote) naming another
    endpoint is refused while the provider's key is set, rather than sent without it, which
    would fail anyway. A file that brings its own `api_key` sends that one, not the user's."""
    for key, value in config.items():
        match = _ENVIRONMENT_REFERENCE.match(value) if isinstance(value, str) else None
        if match:
            return (
                f"`config.{key}` asks for the environment variable {match.group(1)}: "
                "a prompt file cannot read your environment"
            )
    allowed = allowed_hosts(extra_allowed)
    foreign = [(key, host) for key, host in file_endpoints(config) if host not in allowed]
    if not foreign:
        return None
    own_key = config.get("api_key")
    if isinstance(own_key, str) and own_key.strip():
        return None
    variables = environment_key_variables(model)
    if not variables:
        return None
    key, host = foreign[0]
    return (
        f"`config.{key}` would send your {variables[0]} to {host}, a host chosen by the prompt "
        f"file: if you trust it, allow it with {ALLOWED_HOSTS_VARIABLE}={host} (or "
        f"`--allow-host {host}`); else remove `{key}`"
    )


# ---------------------------------------------------------------------------- models and keys


def provider_of(model: str) -> str | None:
    """The provider prefix of a model id (`openai/gpt-4o` → openai) without importing litellm;
    for a bare name (`gpt-4o-mini`) ask litellm, if it is loaded."""
    if "/" in model:
        return model.split("/", 1)[0]
    if litellm_is_loaded():
        try:
            import litellm

            return str(litellm.get_llm_provider(model)[1])
        except Exception:  # unknown model: litellm will say so at call time
            return None
    return None


def is_local_model(model: str) -> bool:
    return model.split("/", 1)[0] == LOCAL_PROVIDER


def model_setup_problem(model: str) -> str | None:
    """One line saying why `model` cannot be called (unknown provider, missing key), or None."""
    if is_local_model(model) or model.split("/", 1)[0] in _custom_handlers:
        return None
    litellm = load_litellm()
    try:
        litellm.get_llm_provider(model)
    except Exception:
        return (
            f"litellm does not know the model `{model}`: write it as provider/model, "
            "e.g. openai/gpt-4o-mini or ollama/llama3"
        )
    return missing_key_message(model)


def missing_key_message(model: str) -> str | None:
    """One line naming the variable to set when `model`'s provider has no key, else None."""
    if is_local_model(model) or model.split("/", 1)[0] in _custom_handlers:
        return None
    litellm = load_litellm()
    try:
        status = litellm.validate_environment(model)
    except Exception:  # an unknown provider: the call itself will report it
        return None
    missing = [
        str(k)
        for k in status.get("missing_keys") or []
        if str(k).endswith(("_KEY", "_TOKEN")) or str(k) in PROVIDER_KEY_VARIABLES.values()
    ]
    if not missing:
        return None
    return _key_message(model, missing)


def _key_message(model: str, candidates: list[str]) -> str:
    preferred = PROVIDER_KEY_VARIABLES.get(provider_of(model) or "")
    variable = preferred if preferred else (candidates[0] if candidates else "the API key")
    return f"{variable} is not set: export it, or pick another `model:`"


def _status_code(error: BaseException) -> int | None:
    status = getattr(error, "status_code", None)
    if not isinstance(status, int):
        status = getattr(getattr(error, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _rejected_key_message(
    error: BaseException, model: str, variables: list[str], own_key: bool
) -> str | None:
    """For a 401/403 when a key *was* sent (the prompt's own `api_key`, or one from the
    environment): the provider rejected it; it is not missing."""
    status = _status_code(error)
    names = {cls.__name__ for cls in type(error).__mro__}
    if status not in (401, 403) and not names & {"AuthenticationError", "PermissionDeniedError"}:
        return None
    candidates = environment_key_variables(model) or [v for v in variables if os.environ.get(v)]
    if not candidates and not own_key:
        return None  # nothing was set: the key is missing, not rejected
    code = f" ({status})" if status else ""
    what = "has no access to this model" if status == 403 else "rejected the key"
    which = "the `api_key` in the prompt's config" if own_key else candidates[0]
    return f"the provider {what}{code}: check {which} (it is set, but not valid for `{model}`)"


def looks_like_missing_key(error: BaseException) -> bool:
    name = type(error).__name__
    return name == "AuthenticationError" or bool(_MISSING_KEY_TEXT.search(str(error)))


def environment_secrets() -> list[str]:
    """The values of secret-looking environment variables (`*_API_KEY`, `*_TOKEN`, …)."""
    return [v for name, v in os.environ.items() if len(v) >= 8 and is_secret_name(name)]


def redact_known_secrets(text: str) -> str:
    """`text` with the value of every secret-looking environment variable replaced by `***`,
    in case a provider echoes a key in an error."""
    for value in environment_secrets():
        if value in text:
            text = text.replace(value, "***")
    return text


def describe_error(error: BaseException, model: str, own_key: bool = False) -> str:
    """One readable line for an error of a model call (never a traceback, never a key)."""
    if isinstance(error, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    if isinstance(error, EmptyReplyError):
        return str(error)
    if looks_like_missing_key(error) and not is_local_model(model):
        variables = re.findall(r"\b[A-Z][A-Z0-9_]*_(?:API_KEY|TOKEN)\b", str(error))
        rejected = _rejected_key_message(error, model, variables, own_key)
        return rejected or _key_message(model, variables)
    text = redact_known_secrets(str(error)).strip()
    first = text.splitlines()[0] if text else ""
    previous = None
    while previous != first:  # "litellm.X: X: message" → "message"
        previous, first = first, _LITELLM_PREFIX.sub("", first, count=1)
    first = first.strip() or type(error).__name__
    return f"{type(error).__name__}: {first}"[:500]


def is_retryable(error: BaseException) -> bool:
    """Rate limits, 5xx, connection errors and timeouts are retried; nothing else."""
    if isinstance(error, asyncio.TimeoutError | TimeoutError):
        return True
    if looks_like_missing_key(error):
        return False
    names = {cls.__name__ for cls in type(error).__mro__}
    retryable = {
        "RateLimitError",
        "InternalServerError",
        "ServiceUnavailableError",
        "BadGatewayError",
        "APIConnectionError",
        "Timeout",
        "APITimeoutError",
    }
    if names & retryable:
        return True
    status = getattr(error, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


def retry_after_seconds(error: BaseException) -> float | None:
    """The delay a `Retry-After` (or `retry-after-ms`) header on the error asks for, if any."""
    for headers in _headers_of(error):
        millis = _header(headers, "retry-after-ms")
        if millis is not None:
            try:
                return max(0.0, float(millis) / 1000)
            except ValueError:
                pass
        value = _header(headers, "retry-after")
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value) if value else None
            if when is not None:
                return max(0.0, when.timestamp() - time.time())
    return None


def _headers_of(error: BaseException) -> list[Any]:
    found = []
    response = getattr(error, "response", None)
    if response is not None and getattr(response, "headers", None) is not None:
        found.append(response.headers)
    for attribute in ("litellm_response_headers", "headers"):
        headers = getattr(error, attribute, None)
        if headers:
            found.append(headers)
    return found


def _header(headers: Any, name: str) -> str | None:
    try:
        value = headers.get(name)
        if value is None and isinstance(headers, Mapping):
            lowered = {str(k).lower(): v for k, v in headers.items()}
            value = lowered.get(name)
    except Exception:
        return None
    return None if value is None else str(value)


# ---------------------------------------------------------------------------- calling


async def litellm_transport(
    model: str, messages: list[dict[str, str]], config: dict[str, Any], timeout_s: float
) -> ModelReply:
    """One `litellm.acompletion` call with the prompt's config; retries are the runner's.

    `num_retries=0` also turns off the provider SDK's own retries. The runner enforces
    `timeout_s` by cancelling the call, so it is not passed on (that costs litellm work on
    every call for nothing)."""
    litellm = load_litellm()
    kwargs = dict(config)
    kwargs.setdefault("num_retries", 0)  # the runner retries, with backoff and Retry-After
    response = await litellm.acompletion(model=model, messages=messages, **kwargs)
    return _model_reply(litellm, response, model)


def calls_local_model_directly(model: str, config: Mapping[str, Any]) -> bool:
    """An embedded-model call goes straight to the local worker, without litellm (seconds of
    import for nothing); with `mock_response`, litellm answers it instead."""
    return is_local_model(model) and "mock_response" not in config


async def local_transport(
    model: str, messages: list[dict[str, str]], config: dict[str, Any]
) -> ModelReply:
    """One generation of `local/<name>` in the worker process, as the litellm provider would
    make it (`local_model.make_local_provider`)."""
    from prompt_lsp.evaluation.local_model import complete

    generation = await complete(model.split("/", 1)[1], messages, dict(config))
    return ModelReply(generation.text, generation.prompt_tokens, generation.completion_tokens)


class RunTransport:
    """The transport of one run: the local worker for embedded-model calls, the light HTTP
    client (`openai_http`) for the calls it can make exactly as litellm would, litellm for
    every other call. One pooled connection set per run; `aclose()` at the end."""

    def __init__(
        self,
        max_connections: int = 64,
        router: Any = None,
        routed: frozenset[str] = frozenset(),
    ) -> None:
        self.max_connections = max_connections
        self.router = router  # a litellm.Router for the models in `routed`
        self.routed = routed
        self._http: Any = None

    async def __call__(
        self, model: str, messages: list[dict[str, str]], config: dict[str, Any], timeout_s: float
    ) -> ModelReply:
        from prompt_lsp.evaluation.openai_http import OpenAIHttpClient, light_client_handles

        if model in self.routed and self.router is not None:
            return await routed_transport(self.router, model, messages, config)
        if calls_local_model_directly(model, config):
            return await local_transport(model, messages, config)
        if not light_client_handles(model, config):
            return await litellm_transport(model, messages, config, timeout_s)
        if self._http is None:
            self._http = OpenAIHttpClient(self.max_connections)
        return await self._http.complete(model, messages, config)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


_DEPLOYMENT_KEYS = frozenset({"api_base", "base_url", "api_key", "api_version"})


async def routed_transport(
    router: Any, model: str, messages: list[dict[str, str]], config: dict[str, Any]
) -> ModelReply:
    """One call through the user's litellm Router: it picks the deployment (and so the
    endpoint and key: a prompt's own are dropped)."""
    litellm = load_litellm()
    kwargs = {k: v for k, v in config.items() if k not in _DEPLOYMENT_KEYS}
    response = await router.acompletion(model=model, messages=messages, **kwargs)
    return _model_reply(litellm, response, model)


def _model_reply(litellm: Any, response: Any, model: str) -> ModelReply:
    """What the runner keeps of a litellm response."""
    return ModelReply(
        text=_reply_text(response),
        prompt_tokens=_usage(response, "prompt_tokens"),
        completion_tokens=_usage(response, "completion_tokens"),
        cost=_cost(litellm, response, model),
    )


class EmptyReplyError(Exception):
    """The provider answered with no choices or no text: an error, never an output."""


def _reply_text(response: Any) -> str:
    choices = getattr(response, "choices", None)
    if not choices:
        raise EmptyReplyError("the model returned no choices")
    try:
        content = choices[0].message.content
    except (AttributeError, IndexError, KeyError, TypeError):
        content = None
    if not isinstance(content, str):
        raise EmptyReplyError("the model returned no text (content: null)")
    return content


def _usage(response: Any, field: str) -> int:
    usage = getattr(response, "usage", None)
    value = getattr(usage, field, None) if usage is not None else None
    return int(value) if isinstance(value, int | float) else 0


def _cost(litellm: Any, response: Any, model: str) -> float:
    """What the call cost in USD; 0 when litellm cannot price it (never fails the call)."""
    hidden = getattr(response, "_hidden_params", None) or {}
    stamped = hidden.get("response_cost") if isinstance(hidden, Mapping) else None
    if isinstance(stamped, int | float):
        return float(stamped)
    if is_local_model(model):
        return 0.0
    return _priced(litellm, response)


def _priced(litellm: Any, response: Any) -> float:
    try:
        value = litellm.completion_cost(completion_response=response)
    except Exception:
        return 0.0
    return float(value) if isinstance(value, int | float) else 0.0


@functools.cache
def local_extra_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None
