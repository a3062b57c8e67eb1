"""Rendering an untrusted template within time and size limits.

Jinja's sandbox stops a template from reaching Python internals, but not from asking for a
huge amount of work: `{{ 9**(9**9) }}` runs for minutes in one C call (holding the GIL, so the
whole server stops), `{{ 'a' * 200000000 }}` or `|indent(1000000)` allocate gigabytes, and two
nested `range(100000)` loops never end. `BoundedEnvironment` checks every operation that can
grow a value in one step before it runs (arithmetic, repetition, concatenation, padding
filters, string methods, `range`, `lipsum`), and `watchdog` stops Python-level loops once the
time is up or the process has grown too much (a loop keeping many large texts). Each refusal raises `RenderLimitError`, which says what was refused.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import Concat
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

MAX_TEXT = 1 << 24  # characters in any one string a template builds (16 Mi)
MAX_ITEMS = 1_000_000  # items in any one list or range a template builds
MAX_INT_BITS = 1 << 16  # bits of an integer result (about 19,700 digits)
MAX_WIDTH = 100_000  # a padding width or a count passed to a filter or string method
MAX_JSON_INDENT = 64
MAX_LIPSUM_PARAGRAPHS = 100
RENDER_SECONDS = 2.0  # wall time for one render
RENDER_MEMORY = 512 << 20  # growth of the process's resident memory during one render


class RenderLimitError(Exception):
    """The template asked for more work than a render may do (message says what)."""


# -- size estimates --------------------------------------------------------------------------


def _refuse_text(size: int, what: str) -> None:
    if size > MAX_TEXT:
        raise RenderLimitError(f"{what} would build {size:,} characters (limit {MAX_TEXT:,})")


def _refuse_items(count: int, what: str) -> None:
    if count > MAX_ITEMS:
        raise RenderLimitError(f"{what} would build {count:,} items (limit {MAX_ITEMS:,})")


def _refuse_width(value: object, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WIDTH:
        raise RenderLimitError(f"{what} with {value:,} is over the limit of {MAX_WIDTH:,}")


def _sized(value: object) -> int | None:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else None


def _check_power(base: object, exponent: object) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return
    if abs(base) <= 1:
        return
    bits = exponent * math.log2(abs(base))
    if bits > MAX_INT_BITS:
        raise RenderLimitError(
            f"{base} ** {exponent} has about {int(bits):,} bits (limit {MAX_INT_BITS:,})"
        )


def _check_product(left: object, right: object) -> None:
    if isinstance(left, int) and isinstance(right, int):
        bits = left.bit_length() + right.bit_length()
        if bits > MAX_INT_BITS:
            raise RenderLimitError(f"a product of {bits:,} bits (limit {MAX_INT_BITS:,})")
        return
    for seq, count in ((left, right), (right, left)):
        size = _sized(seq)
        if size is not None and isinstance(count, int):
            total = size * max(count, 0)
            if isinstance(seq, (str, bytes)):
                _refuse_text(total, "repeating a text")
            else:
                _refuse_items(total, "repeating a list")


def _check_sum(left: object, right: object) -> None:
    a, b = _sized(left), _sized(right)
    if a is None or b is None:
        return
    if isinstance(left, (str, bytes)):
        _refuse_text(a + b, "joining two texts")
    else:
        _refuse_items(a + b, "joining two lists")


# `%` conversions: flags, then a width and a precision (a number or `*`)
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
# `{…:spec}` fields of str.format: any number in a spec is a width or a precision
_FORMAT_NUMBER = re.compile(r"\{[^{}]*:[^{}]*?(\d+)")


def _check_percent(template: object, args: object) -> None:
    if not isinstance(template, str):
        return
    star = False
    for match in _PERCENT_SPEC.finditer(template):
        for part in match.groups():
            if part == "*":
                star = True
            elif part:
                _refuse_width(int(part), "a `%` format width")
    if star:
        values = args if isinstance(args, tuple) else (args,)
        for value in values:
            _refuse_width(value, "a `%*` format width")


def _check_format_string(template: str) -> None:
    for match in _FORMAT_NUMBER.finditer(template):
        _refuse_width(int(match.group(1)), "a format width")


_BINOP_CHECKS: dict[str, Callable[[object, object], None]] = {
    "**": _check_power,
    "*": _check_product,
    "+": _check_sum,
    "%": _check_percent,
}


# -- filters and globals -----------------------------------------------------------------------


def _bounded_filter(
    name: str, check: Callable[..., None], original: Callable[..., Any]
) -> Callable[..., Any]:
    """`original` with `check(value, *args, **kwargs)` first; keeps Jinja's pass_* marker (it is
    in `__dict__`, which `functools.wraps` copies)."""

    @functools.wraps(original)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        # a pass_context / pass_eval_context filter receives that first, then the value
        rest = args[1:] if getattr(original, "jinja_pass_arg", None) else args
        check(*rest, **kwargs)
        return original(*args, **kwargs)

    bounded.__name__ = name
    return bounded


def _check_widths(name: str) -> Callable[..., None]:
    def check(_value: object = None, *args: object, **kwargs: object) -> None:
        for arg in (*args, *kwargs.values()):
            _refuse_width(arg, f"`{name}`")

    return check


def _check_indent(value: object = "", width: object = 4, *_: object, **kwargs: object) -> None:
    width = kwargs.get("width", width)
    _refuse_width(width, "`indent`")
    unit = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    text = str(value)
    _refuse_text(len(text) + (text.count("\n") + 1) * max(unit, 0), "`indent`")


def _check_replace(value: object = "", old: object = "", new: object = "", *_: object) -> None:
    text = str(value)
    if isinstance(old, str) and isinstance(new, str):
        _refuse_text(len(text) + text.count(old) * len(new), "`replace`")


def _check_join(value: object = (), separator: object = "", *_: object, **kwargs: object) -> None:
    separator = kwargs.get("d", separator)
    if isinstance(value, (list, tuple)) and isinstance(separator, str):
        parts = sum(len(v) if isinstance(v, str) else 20 for v in value)
        _refuse_text(parts + len(separator) * len(value), "`join`")


def _check_format(value: object = "", *args: object, **kwargs: object) -> None:
    _check_percent(value, tuple(args) if args else tuple(kwargs.values()))


def _check_tojson(_value: object = None, indent: object = None, *_: object) -> None:
    if isinstance(indent, int) and indent > MAX_JSON_INDENT:
        raise RenderLimitError(f"`tojson` indent {indent} is over the limit of {MAX_JSON_INDENT}")
    if isinstance(indent, str) and len(indent) > MAX_JSON_INDENT:
        raise RenderLimitError(f"a `tojson` indent of {len(indent):,} characters")


_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "indent": _check_indent,
    "replace": _check_replace,
    "join": _check_join,
    "format": _check_format,
    "tojson": _check_tojson,
    **{name: _check_widths(name) for name in ("center", "batch", "slice", "truncate", "wordwrap")},
}


def bounded_range(*args: int) -> Iterator[int]:
    """Jinja's `range`, refusing more than MAX_ITEMS numbers (the watchdog stops long loops)."""
    numbers = range(*args)
    _refuse_items(len(numbers), "`range`")
    return iter(numbers)


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    """Jinja's `lipsum`, at most MAX_LIPSUM_PARAGRAPHS paragraphs of at most MAX_WIDTH words."""
    if not isinstance(n, int) or n > MAX_LIPSUM_PARAGRAPHS:
        raise RenderLimitError(f"`lipsum({n})` is over the limit of {MAX_LIPSUM_PARAGRAPHS}")
    for value in (min, max):
        _refuse_width(value, "`lipsum`")
    return generate_lorem_ipsum(n, html, min, max)


# Methods of str/bytes/list whose integer argument sizes the result (`'x'.ljust(10**9)`).
_SIZING_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


def _check_method(
    method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    inner = getattr(method, "__wrapped__", method)  # the sandbox wraps str.format
    owner = getattr(inner, "__self__", None)
    name = getattr(inner, "__name__", "")
    if not isinstance(owner, (str, bytes, list, tuple)):
        return
    if name in _SIZING_METHODS:
        for arg in (*args, *kwargs.values()):
            _refuse_width(arg, f"`{name}`")
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, *args[:2])
    elif name == "join" and args:
        value = args[0]
        if isinstance(value, (list, tuple)):
            _check_join(value, owner)
    elif name in ("format", "format_map") and isinstance(owner, str):
        _check_format_string(owner)
        for arg in (*args, *kwargs.values()):
            _refuse_width(arg, "a format width")


# -- the environment ----------------------------------------------------------------------------


class _BoundedCodeGenerator(CodeGenerator):
    """`a ~ b` compiles to a join of its parts; this routes it through the environment's
    `bounded_concat`, which checks the size first (`CodeGenerator` is Jinja's documented
    extension point, `Environment.code_generator_class`)."""

    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:
            super().visit_Concat(node, frame)
            return
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedEnvironment(SandboxedEnvironment):
    """A sandboxed environment whose every growing step is checked first (see module doc)."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset(_BINOP_CHECKS)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = bounded_range
        self.globals["lipsum"] = bounded_lipsum
        for name, check in _FILTER_CHECKS.items():
            self.filters[name] = _bounded_filter(name, check, self.filters[name])

    def call_binop(self, context: Context, operator_name: str, left: Any, right: Any) -> Any:
        _BINOP_CHECKS[operator_name](left, right)
        return super().call_binop(context, operator_name, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_method(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    @staticmethod
    def bounded_concat(parts: tuple[Any, ...]) -> str:
        texts = [part if isinstance(part, str) else str(part) for part in parts]
        _refuse_text(sum(map(len, texts)), "`~`")
        return "".join(texts)


# -- the watchdog -----------------------------------------------------------------------------

TEMPLATE_FILENAME = "<template>"  # the file name Jinja gives code compiled from a string
MEMORY_SAMPLE_S = 0.005  # how often the watchdog reads the process's resident memory


def _resident_bytes() -> int | None:
    """This process's resident memory (Linux: /proc/self/statm); None where unknown."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@contextlib.contextmanager
def watchdog(seconds: float = RENDER_SECONDS, memory: int = RENDER_MEMORY) -> Iterator[None]:
    """Raise RenderLimitError in this thread once `seconds` have passed or the process has
    grown by more than `memory` bytes, at the next line of template code or the next Python
    call. A trace function: it sees only this thread; each C call it cannot interrupt is
    bounded by BoundedEnvironment's checks, so a step grows memory by MAX_TEXT at most, and
    memory is read every few milliseconds (a step of that size takes longer)."""
    monotonic = time.monotonic
    started = monotonic()
    end = started + seconds
    baseline = _resident_bytes()
    next_sample = [started + MEMORY_SAMPLE_S]

    def check() -> None:
        now = monotonic()
        if now > end:
            raise RenderLimitError(f"it took more than {seconds:g} s")
        if baseline is not None and now > next_sample[0]:
            next_sample[0] = now + MEMORY_SAMPLE_S
            grown = (_resident_bytes() or baseline) - baseline
            if grown > memory:
                raise RenderLimitError(f"it used more than {memory >> 20:,} MiB of memory")

    def trace_lines(frame: FrameType, event: str, arg: object) -> Callable[..., Any] | None:
        check()
        return trace_lines

    def trace_calls(frame: FrameType, event: str, arg: object) -> Callable[..., Any] | None:
        check()
        # only the template's own code is traced line by line: its loops may call nothing
        return trace_lines if frame.f_code.co_filename == TEMPLATE_FILENAME else None

    previous = sys.gettrace()
    sys.settrace(trace_calls)
    try:
        yield
    finally:
        sys.settrace(previous)


__all__ = [
    "MAX_TEXT",
    "RENDER_SECONDS",
    "BoundedEnvironment",
    "RenderLimitError",
    "watchdog",
]
