"""The built-in metrics: turning one model output (and the example's `expected`) into scores.

Every score is in [0, 1], or None when it cannot be computed (no `expected`, a bad pattern, an
unparseable judge reply), always with a reason then. Cheap metrics are cached in-process by
(metric, options, output, reference), so a re-run of unchanged outputs costs a dict lookup.
`code_tests` runs generated code in a bubblewrap sandbox (see `sandbox`); call it off the event loop (the
runner uses `score_all_async`, which puts it in a worker thread).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prompt_lsp.catalog.metrics import METRICS, compile_pattern, regex_needs_expected
from prompt_lsp.evaluation.light_imports import defer_package
from prompt_lsp.evaluation.sandbox import Limits, SandboxUnavailable, check_available, run_python
from prompt_lsp.format.secrets import scrub_secrets
from prompt_lsp.format.settings import MetricSetting

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
CODE_TESTS_TIMEOUT_S = 10.0
CODE_TESTS_MEMORY_BYTES = 512 * 1024 * 1024
CODE_TESTS_FILE_BYTES = 4 * 1024 * 1024
DEFAULT_RUBRIC = "The response is correct, complete, and follows the instructions it was given."
# Options a metric accepts besides those the catalog lists (for the editor's checks).
EXTRA_OPTIONS = {"code_tests": ("timeout",)}

# (model, messages) -> the judge's reply text. The runner passes one with retries and caching.
JudgeCall = Callable[[str, list[dict[str, str]]], Awaitable[str]]


@dataclass
class MetricSpec:
    """One entry of `metrics:`. The first spec of a prompt is its headline score."""

    name: str
    threshold: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    key: str = ""  # how scores are keyed; the name unless the same metric appears twice

    def __post_init__(self) -> None:
        if not self.key:
            self.key = self.name

    @property
    def needs_expected(self) -> bool:
        if self.name == "regex":
            return regex_needs_expected(self.options)
        info = METRICS.get(self.name)
        return bool(info and info.needs_expected)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, **scrub_secrets(self.options)}
        if self.threshold is not None:
            data["threshold"] = self.threshold
        if self.key != self.name:
            data["key"] = self.key
        return data

    def passes(self, value: float | None) -> bool:
        """Whether an aggregate `value` meets this metric's threshold (no threshold: always)."""
        if self.threshold is None:
            return True
        return value is not None and value >= self.threshold


@dataclass(frozen=True)
class MetricScore:
    score: float | None
    reason: str | None = None


# ---------------------------------------------------------------------------- specs


def metric_spec(setting: MetricSetting) -> MetricSpec:
    """A run's spec of one `metrics:` entry, as `format.settings` read it."""
    return MetricSpec(setting.name, setting.threshold, dict(setting.options), setting.key)


# ---------------------------------------------------------------------------- scoring


def prepare_metrics(specs: list[MetricSpec]) -> None:
    """Build what scoring needs up front (the ROUGE scorer imports rouge_score and
    numpy the first time), so that it can happen in a worker thread rather than in the event loop."""
    types = tuple(sorted({s.name for s in specs if s.name in ROUGE_TYPES}))
    if types:
        _rouge_scorer(types)


def score_all(
    specs: list[MetricSpec], output: str, expected: Any, example: Any = None
) -> dict[str, MetricScore]:
    """Score `output` with every metric, synchronously, keyed by `spec.key`.

    `code_tests` blocks for the subprocess; `llm_judge` needs a judge model and is scored only
    by `score_all_async` (here it is None with a reason)."""
    scores = _score_rouge_group(specs, output, expected)
    for spec in specs:
        if spec.key in scores:
            continue
        if spec.name == "llm_judge":
            scores[spec.key] = MetricScore(None, "llm_judge is scored during an evaluation")
        else:
            scores[spec.key] = score_one(spec, output, expected)
    return {spec.key: scores[spec.key] for spec in specs}


async def score_all_async(
    specs: list[MetricSpec],
    output: str,
    expected: Any,
    example: Any = None,
    judge: JudgeCall | None = None,
    default_judge_model: str | None = None,
) -> dict[str, MetricScore]:
    """Like `score_all`, without blocking the event loop: `code_tests` runs in a worker
    thread and `llm_judge` asks `judge` (a model call) with `judge_model` or the default."""
    scores = _score_rouge_group(specs, output, expected)
    for spec in specs:
        if spec.key in scores:
            continue
        if spec.name == "code_tests":
            scores[spec.key] = await asyncio.to_thread(score_one, spec, output, expected)
        elif spec.name == "llm_judge":
            scores[spec.key] = await judge_score(
                spec, output, expected, example, judge, default_judge_model
            )
        else:
            scores[spec.key] = score_one(spec, output, expected)
    return {spec.key: scores[spec.key] for spec in specs}


def score_one(spec: MetricSpec, output: str, expected: Any) -> MetricScore:
    """One metric other than `llm_judge` (which needs a model call)."""
    options = spec.options
    if spec.name in ROUGE_TYPES:
        return _score_rouge_group([spec], output, expected)[spec.key]
    if spec.name == "json_valid":
        return _json_valid(output)
    if spec.name == "regex":
        pattern = options.get("pattern")
        if pattern is None and expected is None:
            return MetricScore(None, "no `pattern` option and no expected value")
        return _regex(output, str(pattern) if pattern is not None else as_text(expected))
    if expected is None:
        return MetricScore(None, "the example has no expected value")
    if spec.name == "exact_match":
        return _exact_match(
            output,
            as_text(expected),
            bool(options.get("normalize_whitespace", True)),
            bool(options.get("ignore_case", False)),
        )
    if spec.name == "contains":
        return _contains(output, as_text(expected), bool(options.get("ignore_case", False)))
    if spec.name == "code_tests":
        timeout = _positive_float(options.get("timeout"), CODE_TESTS_TIMEOUT_S)
        return run_code_tests(output, as_text(expected), timeout)
    return MetricScore(None, f"{spec.name} cannot be scored here")


def as_text(value: Any) -> str:
    """An `expected` value as text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _positive_float(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return default


@functools.lru_cache(maxsize=65536)
def _exact_match(output: str, expected: str, normalize: bool, ignore_case: bool) -> MetricScore:
    a, b = (
        _normalized(output, normalize, ignore_case),
        _normalized(expected, normalize, ignore_case),
    )
    return MetricScore(1.0 if a == b else 0.0, None if a == b else "differs from expected")


def _normalized(text: str, normalize_whitespace: bool, ignore_case: bool) -> str:
    text = text.strip()
    if normalize_whitespace:
        text = " ".join(text.split())
    return text.casefold() if ignore_case else text


@functools.lru_cache(maxsize=65536)
def _contains(output: str, expected: str, ignore_case: bool) -> MetricScore:
    found = expected.casefold() in output.casefold() if ignore_case else expected in output
    return MetricScore(1.0 if found else 0.0, None if found else "expected text not found")


@functools.lru_cache(maxsize=65536)
def _regex(output: str, pattern: str) -> MetricScore:
    try:
        compiled = compile_pattern(pattern)
    except ValueError as err:
        return MetricScore(None, f"invalid pattern: {err}")
    found = compiled.search(output) is not None
    return MetricScore(1.0 if found else 0.0, None if found else "pattern not found")


@functools.lru_cache(maxsize=65536)
def _json_valid(output: str) -> MetricScore:
    try:
        json.loads(output.strip())
    except ValueError as err:
        return MetricScore(0.0, f"not JSON: {err}")
    return MetricScore(1.0)


# ---------------------------------------------------------------------------- ROUGE


@functools.lru_cache(maxsize=16)
def _rouge_scorer(types: tuple[str, ...]) -> Any:
    """One scorer per set of ROUGE types: built once (the stemmer setup is not free).
    rouge_score needs only nltk's Porter stemmer: the rest of nltk is not imported."""
    for package in ("nltk", "nltk.stem"):
        defer_package(package)
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(types), tokenizer=_stemming_tokenizer())


@functools.cache
def _stemming_tokenizer() -> Any:
    """rouge_score's default tokenizer with the Porter stemmer, each word stemmed once: the
    same words recur across examples, and stemming is most of ROUGE's CPU."""
    from nltk.stem import porter
    from rouge_score import tokenize, tokenizers

    class MemoStemmer:
        def __init__(self) -> None:
            self.stem = functools.lru_cache(maxsize=65536)(porter.PorterStemmer().stem)

    class StemmingTokenizer(tokenizers.Tokenizer):
        stemmer = MemoStemmer()

        def tokenize(self, text: str) -> list[str]:
            return list(tokenize.tokenize(text, self.stemmer))

    return StemmingTokenizer()


@functools.lru_cache(maxsize=65536)
def rouge_fmeasures(types: tuple[str, ...], reference: str, output: str) -> tuple[float, ...]:
    """F-measures of `types` for one pair; the text is tokenized once for all of them."""
    scores = _rouge_scorer(types).score(reference, output)
    return tuple(float(scores[t].fmeasure) for t in types)


def _score_rouge_group(
    specs: list[MetricSpec], output: str, expected: Any
) -> dict[str, MetricScore]:
    rouge_specs = [s for s in specs if s.name in ROUGE_TYPES]
    if not rouge_specs:
        return {}
    if expected is None:
        return {s.key: MetricScore(None, "the example has no expected value") for s in rouge_specs}
    types = tuple(sorted({s.name for s in rouge_specs}))
    values = dict(zip(types, rouge_fmeasures(types, as_text(expected), output), strict=True))
    return {s.key: MetricScore(values[s.name]) for s in rouge_specs}


# ---------------------------------------------------------------------------- code_tests

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(reply: str) -> str:
    """The code in a reply: the first ```python fence, else the first fence of any kind
    (an unterminated one runs to the end), else the whole reply."""
    fences = [(lang.lower(), body) for lang, body in _FENCE.findall(reply)]
    for lang, body in fences:
        if lang in ("python", "py", "python3"):
            return body
    for lang, body in fences:
        if lang in ("", "python", "py", "python3"):
            return body
    return reply


def run_code_tests(reply: str, tests: str, timeout_s: float = CODE_TESTS_TIMEOUT_S) -> MetricScore:
    """Run the reply's code followed by `tests` in the sandbox (see `sandbox`): score 1 when
    the script exits 0, else 0 with the failure as the reason; None (with the one-line reason)
    when no sandbox exists here and the user did not opt in to running code without one."""
    if not tests.strip():
        return MetricScore(None, "the example has no test code")
    try:
        check_available()
    except SandboxUnavailable as err:  # not cached: the user may install bwrap or opt in
        return MetricScore(None, str(err))
    return _run_code_tests(reply, tests, timeout_s)


@functools.lru_cache(maxsize=4096)
def _run_code_tests(reply: str, tests: str, timeout_s: float) -> MetricScore:
    limits = Limits(
        wall_s=timeout_s, memory_bytes=CODE_TESTS_MEMORY_BYTES, file_bytes=CODE_TESTS_FILE_BYTES
    )
    try:
        outcome = run_python(extract_code(reply) + "\n\n" + tests + "\n", limits)
    except SandboxUnavailable as err:
        return MetricScore(None, str(err))
    if outcome.timed_out:
        return MetricScore(0.0, f"timed out after {timeout_s:g} s")
    if outcome.stderr_overflow:
        return MetricScore(0.0, "output limit exceeded (the code wrote too much to stderr)")
    return _verdict(outcome.returncode, outcome.stderr)


def _killed_by(returncode: int, signal_name: str) -> bool:
    number = getattr(signal, signal_name, None)  # SIGXCPU and SIGXFSZ are POSIX-only
    return number is not None and returncode == -number


def _verdict(returncode: int, stderr: str) -> MetricScore:
    if returncode == 0:
        return MetricScore(1.0)
    lines = [line.strip() for line in stderr.splitlines() if line.strip(" ^~\t")]
    last = lines[-1] if lines else ""
    if _killed_by(returncode, "SIGXFSZ"):
        return MetricScore(0.0, "output or file size limit exceeded")
    if _killed_by(returncode, "SIGXCPU"):
        return MetricScore(0.0, "CPU time limit exceeded")
    if "MemoryError" in last or (_killed_by(returncode, "SIGSEGV") and not last):
        return MetricScore(0.0, f"memory limit ({CODE_TESTS_MEMORY_BYTES // 2**20} MB) exceeded")
    if last.startswith("AssertionError") and len(lines) >= 2 and not lines[-2].startswith("File "):
        return MetricScore(0.0, f"{last[:200]} at `{lines[-2][:200]}`")
    if last:
        return MetricScore(0.0, last[:300])
    if returncode < 0:
        return MetricScore(0.0, f"killed by signal {signal.Signals(-returncode).name}")
    return MetricScore(0.0, f"exited with status {returncode}")


# ---------------------------------------------------------------------------- llm_judge

_JUDGE_SYSTEM = (
    "You are a strict, fair evaluator. Score the RESPONSE against the RUBRIC. "
    'Reply with only a JSON object: {"score": <a number from 0 to 1>, "reason": '
    '"<one short sentence>"}.'
)


def judge_messages(
    rubric: str, output: str, expected: Any, inputs: Mapping[str, Any] | None
) -> list[dict[str, str]]:
    parts = [f"RUBRIC:\n{rubric}"]
    if inputs:
        parts.append("INPUT:\n" + json.dumps(dict(inputs), ensure_ascii=False, indent=2))
    if expected is not None:
        parts.append(f"REFERENCE ANSWER:\n{as_text(expected)}")
    parts.append(f"RESPONSE:\n{output}")
    return [
        {"role": "system", "content": _JUDGE_SYSTEM},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


async def judge_score(
    spec: MetricSpec,
    output: str,
    expected: Any,
    example: Any,
    judge: JudgeCall | None,
    default_model: str | None,
) -> MetricScore:
    model = spec.options.get("judge_model") or default_model
    if judge is None or not model:
        return MetricScore(None, "no judge model to ask")
    rubric = str(spec.options.get("rubric") or DEFAULT_RUBRIC)
    inputs = getattr(example, "inputs", None)
    try:
        reply = await judge(str(model), judge_messages(rubric, output, expected, inputs))
    except asyncio.CancelledError:
        raise
    except Exception as err:  # the judge failing must not fail the example
        return MetricScore(None, f"judge call failed: {_first_line(str(err))}")
    return parse_judge_reply(reply)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else "no details"


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_RATIO = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_PERCENT = re.compile(r"(-?\d+(?:\.\d+)?)\s*%")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def parse_judge_reply(reply: str) -> MetricScore:
    """A judge's reply as a score: a JSON `{"score", "reason"}` (possibly fenced or wrapped in
    prose), else "7/10" or "70%", else a bare number in [0, 1]. Scores given on a 0–10 or
    0–100 scale are scaled down. Anything else scores None with the reason why."""
    text = reply.strip()
    data = _json_object(text)
    if data is not None and "score" in data:
        value = _as_number(data.get("score"))
        reason = data.get("reason")
        reason_text = str(reason) if reason not in (None, "") else None
        if value is None:
            return MetricScore(None, f"judge gave a non-numeric score: {data.get('score')!r}")
        return _scaled(value, reason_text)
    if match := _RATIO.search(text):
        numerator, denominator = float(match.group(1)), float(match.group(2))
        if denominator > 0:
            return _scaled(numerator / denominator, _reason_from(text))
    if match := _PERCENT.search(text):
        return _scaled(float(match.group(1)) / 100, _reason_from(text))
    numbers = _NUMBER.findall(text)
    if numbers:
        return _scaled(float(numbers[0]), _reason_from(text))
    shown = text[:80] + ("…" if len(text) > 80 else "")
    return MetricScore(None, f"could not read a score from the judge's reply: {shown!r}")


def _json_object(text: str) -> dict[str, Any] | None:
    candidates = [text, *(body for _, body in _FENCE.findall(text))]
    match = _JSON_OBJECT.search(text)
    if match:
        candidates.append(match.group(0))
    for candidate in candidates:
        try:
            data = json.loads(candidate.strip())
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _NUMBER.search(value)
        if match and (ratio := _RATIO.search(value)) and float(ratio.group(2)) > 0:
            return float(ratio.group(1)) / float(ratio.group(2))
        return float(match.group(0)) if match else None
    return None


def _scaled(value: float, reason: str | None) -> MetricScore:
    if math.isnan(value) or value < 0:
        return MetricScore(None, f"judge score {value:g} is out of range")
    if value <= 1:
        return MetricScore(value, reason)
    if value <= 10:
        return MetricScore(value / 10, reason)
    if value <= 100:
        return MetricScore(value / 100, reason)
    return MetricScore(None, f"judge score {value:g} is out of range")


def _reason_from(text: str) -> str | None:
    return _first_line(text) if text else None
