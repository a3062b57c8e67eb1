"""A light client for OpenAI-compatible chat endpoints, behind the same `Transport` interface.

litellm takes seconds of CPU to import and about 10 ms of CPU per call (logging objects, cost
lookups, response objects); for a plain `openai/<model>` chat call with plain sampling settings
none of that is needed. This module sends the request litellm would send — the same URL,
headers that matter, JSON body — over one pooled `aiohttp` session (a dependency of
litellm's; its C HTTP parser costs a fraction of httpx's CPU per call), and turns its errors into exceptions with litellm's names and messages, so retries,
`Retry-After` and error lines are the same. Anything else (other providers, bare model names,
reasoning models whose parameters litellm rewrites, tools or any setting this client does not
know) goes to litellm: `light_client_handles` decides, once per model.

The endpoint is the prompt's `api_base`/`base_url` (already vetted by the session: keys go
only where the user allowed) or the user's `OPENAI_BASE_URL` / `OPENAI_API_BASE`, as in litellm.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prompt_lsp.evaluation.providers import EmptyReplyError, ModelReply

if TYPE_CHECKING:
    import aiohttp


@dataclass(frozen=True)
class HttpReply:
    """What an error keeps of the HTTP answer (`providers.retry_after_seconds` reads its
    headers, like those of litellm's errors)."""

    status_code: int
    headers: Mapping[str, str]
    text: str


DEFAULT_API_BASE = "https://api.openai.com/v1"
# Settings passed through unchanged by litellm for an OpenAI chat model.
PASSTHROUGH_SETTINGS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "response_format",
    }
)
# Settings this client reads itself, or that only steer litellm and the runner.
CLIENT_SETTINGS = frozenset({"api_base", "base_url", "api_key", "timeout", "num_retries"})
# Models whose parameters litellm rewrites (max_tokens → max_completion_tokens, …).
_REWRITTEN_MODELS = re.compile(r"^(o\d|gpt-5|gpt-oss|codex)", re.I)
_DISABLE_VARIABLE = "PROMPT_LSP_LITELLM_ONLY"  # "1": every call through litellm


def light_client_handles(model: str, config: Mapping[str, Any]) -> bool:
    """True when a call of `model` with `config` can skip litellm with the same result."""
    if os.environ.get(_DISABLE_VARIABLE, "").strip() in ("1", "true", "yes"):
        return False
    provider, _, name = model.partition("/")
    if provider != "openai" or not name or _REWRITTEN_MODELS.match(name):
        return False
    return all(key in PASSTHROUGH_SETTINGS or key in CLIENT_SETTINGS for key in config)


def missing_key_problem(config: Mapping[str, Any]) -> str | None:
    """The line litellm's key check gives when no OpenAI key is set, or None."""
    key = config.get("api_key")
    if (isinstance(key, str) and key.strip()) or os.environ.get("OPENAI_API_KEY", "").strip():
        return None
    return "OPENAI_API_KEY is not set: export it, or pick another `model:`"


# ---------------------------------------------------------------------------- errors


class OpenAIHttpError(Exception):
    """An error answer or a failed connection; subclasses carry litellm's class names, so
    `providers.is_retryable` and `describe_error` treat both clients' errors alike."""

    def __init__(self, message: str, status_code: int | None = None, response: Any = None):
        super().__init__(message)
        self.status_code = status_code
        self.response = response


class APIError(OpenAIHttpError): ...


class BadRequestError(OpenAIHttpError): ...


class AuthenticationError(OpenAIHttpError): ...


class NotFoundError(OpenAIHttpError): ...


class RateLimitError(OpenAIHttpError): ...


class InternalServerError(OpenAIHttpError): ...


class BadGatewayError(OpenAIHttpError): ...


class ServiceUnavailableError(OpenAIHttpError): ...


class Timeout(OpenAIHttpError): ...


# How litellm 1.110 maps an OpenAI endpoint's status codes (any other: APIError).
_ERROR_FOR_STATUS: dict[int, type[OpenAIHttpError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    408: Timeout,
    422: BadRequestError,
    429: RateLimitError,
    500: InternalServerError,
    502: BadGatewayError,
    503: ServiceUnavailableError,
    504: Timeout,
}


def error_for_response(response: HttpReply) -> OpenAIHttpError:
    status = response.status_code
    cls = _ERROR_FOR_STATUS.get(status, APIError)
    prefix = "Timeout Error: " if cls is Timeout else ""
    return cls(f"{prefix}OpenAIException - {_error_message(response)}", status, response)


def _error_message(response: HttpReply) -> str:
    text = response.text
    try:
        data = json.loads(text)
    except ValueError:  # a proxy's error page: litellm names the status alone
        return f"Error code: {response.status_code}"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return text.strip()


# ---------------------------------------------------------------------------- prices


@functools.cache
def _price_table() -> dict[str, Any]:
    """litellm's bundled price map, read as JSON without importing litellm (the same file
    `LITELLM_LOCAL_MODEL_COST_MAP=True` makes litellm read)."""
    spec = importlib.util.find_spec("litellm")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "model_prices_and_context_window_backup.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def preload_prices() -> None:
    """Read the price map now (call it off the event loop, before the first reply)."""
    _price_table()


def call_cost(name: str, usage: Mapping[str, Any]) -> float:
    """USD for one call of the OpenAI model `name`, as litellm prices it (cached prompt tokens
    at the cache-read rate); 0 for a model litellm does not price."""
    table = _price_table()
    entry = table.get(name) or table.get(f"openai/{name}")
    if not isinstance(entry, dict):
        return 0.0
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    input_rate = _float(entry.get("input_cost_per_token"))
    cached_rate = _float(entry.get("cache_read_input_token_cost"), input_rate)
    output_rate = _float(entry.get("output_cost_per_token"))
    return (prompt - cached) * input_rate + cached * cached_rate + completion * output_rate


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _float(value: Any, default: float = 0.0) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


# ---------------------------------------------------------------------------- the client


def api_base_for(config: Mapping[str, Any]) -> str:
    """The prompt's endpoint (vetted by the session), else the user's, else OpenAI's."""
    for key in ("api_base", "base_url"):
        value = config.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().rstrip("/")
    for variable in ("OPENAI_BASE_URL", "OPENAI_API_BASE"):
        value = os.environ.get(variable, "").strip()
        if value:
            return value.rstrip("/")
    return DEFAULT_API_BASE


def request_headers(config: Mapping[str, Any]) -> dict[str, str]:
    key = config.get("api_key")
    if not isinstance(key, str) or not key.strip():
        key = os.environ.get("OPENAI_API_KEY", "")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    organization = os.environ.get("OPENAI_ORGANIZATION") or os.environ.get("OPENAI_ORG_ID")
    if organization:
        headers["OpenAI-Organization"] = organization
    project = os.environ.get("OPENAI_PROJECT_ID")
    if project:
        headers["OpenAI-Project"] = project
    return headers


def request_body(name: str, messages: list[dict[str, str]], config: Mapping[str, Any]) -> bytes:
    body: dict[str, Any] = {"model": name, "messages": messages}
    body.update((k, v) for k, v in config.items() if k in PASSTHROUGH_SETTINGS)
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


class OpenAIHttpClient:
    """One pooled HTTP session for a run: `await client.complete(...)`, then `aclose()`.
    Create it in the event loop that will use it."""

    def __init__(self, max_connections: int = 64) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._session: aiohttp.ClientSession | None = None
        self._max_connections = max_connections

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            aiohttp = self._aiohttp
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=aiohttp.ClientTimeout(total=None),  # the runner cancels slow calls
                trust_env=True,  # HTTPS_PROXY / NO_PROXY, as the openai SDK does
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def complete(
        self, model: str, messages: list[dict[str, str]], config: Mapping[str, Any]
    ) -> ModelReply:
        name = model.split("/", 1)[1]
        url = api_base_for(config) + "/chat/completions"
        aiohttp = self._aiohttp
        try:
            async with self._open().post(
                url, data=request_body(name, messages, config), headers=request_headers(config)
            ) as response:
                status, headers = response.status, response.headers
                payload = await response.read()
        except aiohttp.ClientError as err:  # litellm reports a refused connection so, too
            raise InternalServerError("OpenAIException - Connection error.") from err
        text = payload.decode("utf-8", "replace")
        if status >= 400:
            raise error_for_response(HttpReply(status, headers, text))
        try:
            data = json.loads(text)
        except ValueError as err:
            raise InternalServerError(
                "OpenAIException - the reply is not JSON", status, HttpReply(status, headers, text)
            ) from err
        return reply_from_json(name, data)


def reply_from_json(name: str, data: Any) -> ModelReply:
    usage = data.get("usage") if isinstance(data, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    return ModelReply(
        text=_reply_text(data),
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        cost=call_cost(name, usage),
    )


def _reply_text(data: Any) -> str:
    """The reply's text; no choices or no text is an error, as for a litellm call."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices, list):
        raise EmptyReplyError("the model returned no choices")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise EmptyReplyError("the model returned no text (content: null)")
    return content
