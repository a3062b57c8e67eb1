"""Candidate prompts: each generator turns a prompt file's text into variants of it.

Every variant is a whole prompt file, edited as text so the diff the user sees is the change and
nothing else: demonstrations are written as plain paragraphs in the shape of the prompt's own
query (`Review: …` / `Sentiment: …`), instructions as sentences at the top of the instruction,
tokens around the input, config values in the front matter. Nothing here calls a model.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

from prompt_lsp.catalog.tokens import family_for_model
from prompt_lsp.evaluation.metrics import as_text
from prompt_lsp.format import PromptDocument, parse
from prompt_lsp.format.examples import Example
from prompt_lsp.format.model import Message

GENERATORS = ("demonstrations", "config", "tokens", "instructions")
_SIMPLE_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
_TEMPLATE_SYNTAX = re.compile(r"\{[{%#]|[%}]\}|\{\{\{")
MAX_LABELS = 12  # more distinct expected values than this: not a classification
MAX_DEMONSTRATIONS = 8


@dataclass(frozen=True)
class Variant:
    """A candidate text and what makes it different from its parent."""

    text: str
    change: str  # one line for the leaderboard
    generator: str
    demo_ids: tuple[str, ...] = ()  # training examples written into the prompt


# ------------------------------------------------------------------------ the query's shape


@dataclass(frozen=True)
class QueryShape:
    """Where the prompt asks its question: the last paragraph that uses an input variable,
    and the earlier paragraphs of the same message written in the same shape (the existing
    demonstrations). Line numbers are file lines; `end` is exclusive."""

    start: int
    end: int
    lines: tuple[str, ...]
    demo_blocks: tuple[tuple[int, int], ...]
    answer_after_colon: bool  # the last line is a label like `Sentiment:` the answer follows

    def prefixes(self) -> list[str]:
        return [line.split("{{", 1)[0].rstrip() for line in self.lines]


def _paragraphs(lines: list[str], start: int, end: int) -> list[tuple[int, int]]:
    blocks: list[tuple[int, int]] = []
    first: int | None = None
    for number in range(start, end + 1):
        blank = number == end or not lines[number].strip()
        if blank and first is not None:
            blocks.append((first, number))
            first = None
        elif not blank and first is None:
            first = number
    return blocks


def find_query(doc: PromptDocument) -> QueryShape | None:
    """The query paragraph and the demonstrations shaped like it; None for a prompt whose input
    is not a plain paragraph of `{{ variable }}` lines (loops, filters, several paragraphs)."""
    lines = doc.lines
    for message in reversed(doc.messages):
        start, end = message.body_range.start.line, message.body_range.end.line + 1
        blocks = _paragraphs(lines, start, min(end, len(lines)))
        for index in range(len(blocks) - 1, -1, -1):
            first, last = blocks[index]
            text = "\n".join(lines[first:last])
            if "{{" not in text:
                continue
            if "{%" in text or any(
                "{{" in line and not _SIMPLE_VARIABLE.search(line) for line in lines[first:last]
            ):
                return None
            shape = QueryShape(
                first,
                last,
                tuple(lines[first:last]),
                (),
                "{{" not in lines[last - 1] and lines[last - 1].rstrip().endswith(":"),
            )
            demos = tuple(b for b in blocks[:index] if _same_shape(lines[b[0] : b[1]], shape))
            return QueryShape(shape.start, shape.end, shape.lines, demos, shape.answer_after_colon)
        if any("{{" in lines[n] for n in range(start, min(end, len(lines)))):
            return None
    return None


def _same_shape(block: list[str], shape: QueryShape) -> bool:
    if len(block) != len(shape.lines):
        return False
    return all(
        line.startswith(prefix) for line, prefix in zip(block, shape.prefixes(), strict=True)
    )


def _safe(value: object) -> bool:
    """Text that can be written into a template as it is."""
    return not _TEMPLATE_SYNTAX.search(as_text(value))


def demonstration(shape: QueryShape, example: Example) -> list[str] | None:
    """The query paragraph filled in with `example` and its answer; None when it cannot be
    written literally (a missing input, template syntax in the values)."""
    if not _safe(example.expected) or not all(_safe(v) for v in example.inputs.values()):
        return None
    filled: list[str] = []
    for line in shape.lines:
        missing = [m.group(1) for m in _SIMPLE_VARIABLE.finditer(line)]
        if any(name not in example.inputs for name in missing):
            return None
        filled.append(
            _SIMPLE_VARIABLE.sub(
                lambda m: " ".join(as_text(example.inputs[m.group(1)]).split()), line
            )
        )
    answer = as_text(example.expected).strip()
    if shape.answer_after_colon:
        filled[-1] = f"{filled[-1].rstrip()} {answer}"
    else:
        filled.append(answer)
    return filled


# ------------------------------------------------------------------------ helpers


def _replace_lines(text: str, start: int, end: int, new: list[str]) -> str:
    lines = text.split("\n")
    return "\n".join(lines[:start] + new + lines[end:])


def labels_of(examples: list[Example]) -> list[str]:
    """The distinct expected values when they look like class labels (few, short, repeated)."""
    values = [as_text(e.expected).strip() for e in examples if e.has_expected]
    distinct = list(dict.fromkeys(values))
    if not values or len(distinct) > MAX_LABELS or len(distinct) * 2 > len(values):
        return []
    if any(len(v.split()) > 3 or "\n" in v for v in distinct):
        return []
    return sorted(distinct)


# ------------------------------------------------------------------------ demonstrations


def demonstration_variants(
    text: str, train: list[Example], seed: int, max_variants: int = 6
) -> list[Variant]:
    """Replace the prompt's demonstrations with ones chosen from `train`: balanced across labels
    for a classification, in a few sizes and orders; none at all as one option."""
    doc = parse(text, bounded=False)
    shape = find_query(doc)
    if shape is None:
        return []
    usable = [e for e in train if e.has_expected and demonstration(shape, e) is not None]
    if not usable:
        return []
    rng = random.Random(seed)
    labels = labels_of(usable)
    choices: list[tuple[str, list[Example]]] = []
    if labels:
        by_label = {
            label: [e for e in usable if as_text(e.expected).strip() == label] for label in labels
        }
        for per_label in (1, 2):
            if per_label * len(labels) > MAX_DEMONSTRATIONS:
                break
            for order in range(2):
                picks = [rng.sample(pool, min(per_label, len(pool))) for pool in by_label.values()]
                chosen = [e for round_ in zip(*picks, strict=False) for e in round_]
                chosen += [e for group in picks for e in group if e not in chosen]
                if order:
                    rng.shuffle(chosen)
                what = f"{len(chosen)} demonstrations, {per_label} per label" + (
                    ", shuffled" if order else ", labels alternating"
                )
                choices.append((what, chosen))
    for size in (2, 4, 6):
        if size <= len(usable) and len(choices) < max_variants - 1:
            choices.append((f"{size} demonstrations, chosen at random", rng.sample(usable, size)))
    variants = [_with_demonstrations(text, shape, chosen, what) for what, chosen in choices]
    if shape.demo_blocks:
        variants.append(_with_demonstrations(text, shape, [], "no demonstrations"))
    unique = {v.text: v for v in variants if v.text != text}
    return list(unique.values())[:max_variants]


def _with_demonstrations(text: str, shape: QueryShape, chosen: list[Example], what: str) -> Variant:
    block: list[str] = []
    for example in chosen:
        block += [*(demonstration(shape, example) or []), ""]
    lines = text.split("\n")
    if shape.demo_blocks:
        first = shape.demo_blocks[0][0]
        # keep what sits between the old demonstrations and the query only if it is not one
        kept = lines[:first] + block + lines[shape.start :]
    else:
        kept = lines[: shape.start] + block + lines[shape.start :]
    return Variant("\n".join(kept), what, "demonstrations", tuple(e.id for e in chosen))


# ------------------------------------------------------------------------ instructions


def _instruction_message(doc: PromptDocument) -> Message | None:
    """The system message, else the first message."""
    if not doc.messages:
        return None
    return next((m for m in doc.messages if m.role == "system"), doc.messages[0])


def _instruction_line(doc: PromptDocument) -> int | None:
    """The file line where new instruction sentences go: the top of the instruction message."""
    message = _instruction_message(doc)
    if message is None:
        return None
    line = message.body_range.start.line
    while line < len(doc.lines) and not doc.lines[line].strip():
        line += 1
    return line


def instruction_variants(text: str, train: list[Example]) -> list[Variant]:
    """The offline rewrite operators, one sentence each: role framing, task restatement, an
    output-format constraint and a length constraint."""
    doc = parse(text, bounded=False)
    at = _instruction_line(doc)
    if at is None:
        return []
    task = (doc.settings.description or doc.settings.name or "").strip().rstrip(".")
    labels = labels_of(train)
    answers = [as_text(e.expected).strip() for e in train if e.has_expected]
    words = max((len(a.split()) for a in answers), default=0)
    sentences: list[tuple[str, str]] = []
    if task:
        sentences.append(
            ("role framing", f"You are an expert at this task: {task[0].lower()}{task[1:]}.")
        )
        sentences.append(("task restatement", f"Task: {task}."))
    else:
        sentences.append(
            ("role framing", "You are a careful expert. Follow the instructions exactly.")
        )
    if labels:
        sentences.append(
            (
                "output-format constraint",
                f"Answer with exactly one of: {', '.join(labels)}. Nothing else.",
            )
        )
    elif answers and all(_is_json(a) for a in answers):
        sentences.append(("output-format constraint", "Answer with valid JSON only, nothing else."))
    else:
        sentences.append(("output-format constraint", "Give only the answer, with no explanation."))
    if words:
        unit = "word" if words == 1 else "words"
        sentences.append(("length constraint", f"Keep the answer to at most {words} {unit}."))
    lines = text.split("\n")
    return [
        Variant(_replace_lines(text, at, at, [sentence]), f"{what}: “{sentence}”", "instructions")
        for what, sentence in sentences
        if sentence not in lines
    ]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return text.startswith(("{", "["))


def instruction_text(doc: PromptDocument) -> tuple[int, int] | None:
    """The instruction paragraph (file lines, end exclusive) reflective rewriting edits: the
    first paragraph of the system message, else of the first message, if it uses no variable."""
    message = _instruction_message(doc)
    at = _instruction_line(doc)
    if message is None or at is None:
        return None
    last = min(message.body_range.end.line + 1, len(doc.lines))
    end = at
    while end < last and doc.lines[end].strip():
        end += 1
    block = "\n".join(doc.lines[at:end])
    if not block or "{{" in block or "{%" in block:
        return None
    return at, end


def with_instruction(text: str, instruction: str) -> str | None:
    """`text` with its instruction paragraph replaced (None when it has none)."""
    doc = parse(text, bounded=False)
    span = instruction_text(doc)
    if span is None or not _safe(instruction):
        return None
    new = [line for line in instruction.strip().split("\n") if line.strip()] or [""]
    return _replace_lines(text, span[0], span[1], new)


# ------------------------------------------------------------------------ special tokens


@dataclass(frozen=True)
class Framing:
    name: str
    before_input: str  # opens the input lines
    after_input: str  # closes them (the answer line follows)


_FAMILY_FRAMINGS = {
    "Gemma": Framing(
        "Gemma turn tokens", "<start_of_turn>user", "<end_of_turn>\n<start_of_turn>model"
    ),
    "ChatML": Framing(
        "ChatML turn tokens", "<|im_start|>user", "<|im_end|>\n<|im_start|>assistant"
    ),
    "Llama 3": Framing(
        "Llama 3 header tokens",
        "<|start_header_id|>user<|end_header_id|>\n",
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n",
    ),
    "Llama 2 / Mistral": Framing("[INST] tokens", "[INST]", "[/INST]"),
}


def token_variants(text: str, model: str) -> list[Variant]:
    """Frame the input of the query and of every demonstration: the seed tokens `<start>…<end>`,
    a `[SEP]` between input and answer, and the model family's own turn tokens where the family
    is known."""
    doc = parse(text, bounded=False)
    shape = find_query(doc)
    if shape is None or not shape.answer_after_colon or len(shape.lines) < 2:
        return []
    variants = [
        _framed(text, shape, _wrap_values, "seed tokens <start>…<end> around the input"),
        _framed(text, shape, _separate, "seed token [SEP] between input and answer"),
    ]
    family = family_for_model(model)
    framing = _FAMILY_FRAMINGS.get(family.name) if family else None
    if framing is not None:
        variants.append(
            _framed(
                text, shape, lambda b, s: _turns(b, framing), f"{framing.name} around each exchange"
            )
        )
    return [v for v in variants if v.text != text]


def _framed(text: str, shape: QueryShape, edit, what: str) -> Variant:  # noqa: ANN001
    lines = text.split("\n")
    for start, end in sorted([*shape.demo_blocks, (shape.start, shape.end)], reverse=True):
        lines[start:end] = edit(lines[start:end], shape)
    return Variant("\n".join(lines), what, "tokens")


def _wrap_values(block: list[str], shape: QueryShape) -> list[str]:
    out = []
    for line, template in zip(block, shape.lines, strict=True):
        prefix = template.split("{{", 1)[0]
        if "{{" in template and "<start>" not in line:
            line = f"{prefix}<start>{line[len(prefix) :]}<end>"
        out.append(line)
    return out


def _separate(block: list[str], shape: QueryShape) -> list[str]:
    return [*block[:-1], "[SEP]", block[-1]]


def _turns(block: list[str], framing: Framing) -> list[str]:
    return [framing.before_input, *block[:-1], *framing.after_input.split("\n"), block[-1]]


# ------------------------------------------------------------------------ config


def config_variants(text: str, train: list[Example]) -> list[Variant]:
    """Front matter `config:` values within bounds: temperature 0, a `max_tokens` fitted to the
    longest expected answer, a newline stop for one-line answers, and those together."""
    doc = parse(text, bounded=False)
    if doc.entry("config") is None and doc.settings.config:
        return []  # Prompty's or Dotprompt's own layout: not edited here
    config = doc.settings.config
    answers = [as_text(e.expected) for e in train if e.has_expected]
    if not answers:
        return []
    longest = max(len(a) for a in answers)
    fitted = max(4, min(1024, longest // 3 + 4))
    edits: list[tuple[str, object, str]] = []
    if config.get("temperature") not in (0, 0.0):
        edits.append(("temperature", 0, "temperature 0"))
    current_max = config.get("max_tokens")
    if not isinstance(current_max, int) or current_max > fitted * 2:
        edits.append(("max_tokens", fitted, f"max_tokens {fitted}"))
    if all("\n" not in a.strip() for a in answers) and not config.get("stop"):
        edits.append(("stop", ["\n"], 'stop at a newline ("\\n")'))
    variants = []
    for key, value, what in edits:
        variants.append(Variant(set_config(text, key, value), what, "config"))
    if len(edits) > 1:
        combined = text
        for key, value, _ in edits:
            combined = set_config(combined, key, value)
        variants.append(Variant(combined, " + ".join(w for *_, w in edits), "config"))
    return variants


def set_config(text: str, key: str, value: object) -> str:
    """`text` with `config.<key>` set to `value` (a JSON value is also YAML)."""
    doc = parse(text, bounded=False)
    written = json.dumps(value, ensure_ascii=False)
    entry = doc.entry("config", key)
    lines = text.split("\n")
    if entry is not None:
        rng = entry.value_range
        if rng.start.line == rng.end.line:
            line = lines[rng.start.line]
            lines[rng.start.line] = (
                line[: rng.start.character] + written + line[rng.end.character :]
            )
            return "\n".join(lines)
    parent = doc.entry("config")
    if parent is not None and parent.key_range is not None:
        line = parent.key_range.start.line
        indent = " " * (parent.key_range.start.character + 2)
        if entry is not None:  # a block value (a list over several lines): replace it whole
            del lines[
                entry.key_range.start.line
                if entry.key_range
                else line + 1 : entry.value_range.end.line + 1
            ]
        return _replace_lines("\n".join(lines), line + 1, line + 1, [f"{indent}{key}: {written}"])
    if doc.front_matter_range is None:
        return text
    closing = doc.front_matter_range.end.line
    return _replace_lines(text, closing, closing, ["config:", f"  {key}: {written}"])


def all_variants(
    generator: str, text: str, train: list[Example], model: str, seed: int
) -> Iterator[Variant]:
    if generator == "demonstrations":
        yield from demonstration_variants(text, train, seed)
    elif generator == "instructions":
        yield from instruction_variants(text, train)
    elif generator == "tokens":
        yield from token_variants(text, model)
    elif generator == "config":
        yield from config_variants(text, train)
