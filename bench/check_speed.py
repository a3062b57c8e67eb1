"""Timing of `parse` + every check on a large, realistic prompt.

The prompt has 2,000 lines (prose, a variable every few lines, loops, ifs and role markers) and
its JSONL examples file 5,000 lines. After a warm-up (which fills the examples cache and the
model catalog), the median and p90 wall time of ~30 runs of parse + all checks are printed (and
the CPU time, which a busy machine inflates less), for a re-check of the same text, a front
matter edit and a body edit. Target: under 50 ms warm.

Run: python bench/check_speed.py [--runs N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from prompt_lsp.checks import check_document
from prompt_lsp.evaluation.examples import load_examples
from prompt_lsp.format import parse

PROSE = [
    "You are a careful assistant who answers in plain, precise English.",
    "Read the material below and keep only what the question needs.",
    "Never invent facts; when the material is silent, say so.",
    "Quote numbers exactly as they are written, with their units.",
    "Prefer short sentences. Avoid jargon unless the reader used it first.",
    "If two sources disagree, report both and say which is more recent.",
    "Use bullet points for lists of three or more items.",
    "Keep the tone friendly but not familiar.",
]
VARIABLES = ["article", "question", "audience", "language", "tone", "sentences", "topic"]
TARGET_LINES = 2_000
EXAMPLE_LINES = 5_000


def build_prompt(examples_name: str) -> str:
    """A 2,000-line prompt: front matter, then role sections of prose with variables, loops
    and conditionals."""
    rng = random.Random(7)
    schema = "\n".join(f"    {name}: string, the {name}" for name in VARIABLES)
    head = [
        "---",
        "name: big-prompt",
        "description: A deliberately long prompt for timing the checks",
        "model: openai/gpt-4o-mini",
        "config:",
        "  temperature: 0.2",
        "  max_tokens: 400",
        "input:",
        "  schema:",
        schema,
        "    items?: array, supporting passages",
        "  default:",
        "    language: English",
        'tokens: ["<start>", "<end>"]',
        f"examples: {examples_name}",
        "metrics:",
        "  - rougeL",
        "  - {name: rouge1, threshold: 0.3}",
        "---",
    ]
    lines = "\n".join(head).split("\n")
    roles = ["system", "user", "assistant", "user"]
    section = 0
    while len(lines) < TARGET_LINES:
        lines.append(f"{roles[section % len(roles)]}:")
        section += 1
        for n in range(40):
            if n % 4 == 0:
                lines.append(f"{rng.choice(PROSE)} Write for {{{{ {rng.choice(VARIABLES)} }}}}.")
            elif n == 13:
                lines += [
                    "{% for item in items %}",
                    "- <start>{{ item.title | trim }}<end>: {{ item.text | truncate(200) }}",
                    "{% endfor %}",
                ]
            elif n == 27:
                lines += [
                    "{% if tone == 'formal' %}",
                    "Use formal address throughout and avoid contractions.",
                    "{% else %}",
                    "Contractions are fine; sound like a person, in {{ language | lower }}.",
                    "{% endif %}",
                ]
            else:
                lines.append(rng.choice(PROSE))
    lines = lines[: TARGET_LINES - 1] + [PROSE[0]]  # never end on an empty role marker
    return "\n".join(lines) + "\n"


def as_dotprompt(text: str) -> str:
    """The same prompt written as a Dotprompt (Handlebars) file: `{{role}}` tags, `{{#each}}`,
    `{{#ifEquals}}`, no filters."""
    replacements = [
        (r"(?m)^assistant:$", '{{role "model"}}'),
        (r"(?m)^(system|user):$", r'{{role "\1"}}'),
        (r"\{% for item in items %\}", "{{#each items}}"),
        (r"\{% endfor %\}", "{{/each}}"),
        (r"\{\{ item\.title \| trim \}\}", "{{title}}"),
        (r"\{\{ item\.text \| truncate\(200\) \}\}", "{{text}}"),
        (r"\{% if tone == 'formal' %\}", '{{#ifEquals tone "formal"}}'),
        (r"\{% else %\}", "{{else}}"),
        (r"\{% endif %\}", "{{/ifEquals}}"),
        (r"\{\{ language \| lower \}\}", "{{language}}"),
    ]
    for pattern, replacement in replacements:
        text = re.sub(pattern, replacement, text)
    return text


def build_examples() -> str:
    rng = random.Random(11)
    rows = []
    for index in range(EXAMPLE_LINES):
        inputs = {name: " ".join(rng.choices(PROSE, k=2)) for name in VARIABLES}
        inputs["items"] = [{"title": f"Passage {index}", "text": rng.choice(PROSE)}]
        rows.append(
            json.dumps({"id": f"ex{index}", "input": inputs, "expected": rng.choice(PROSE)})
        )
    return "\n".join(rows) + "\n"


def time_runs(
    texts: list[str], path: Path, slow: bool = True, previous: str | None = None
) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of parse + every check (without the slow ones, which the
    editor runs once typing pauses, when `slow` is false), once per text; with `previous`, each
    text is parsed as an edit of that one, as the editor does."""
    wall, cpu = [], []
    before = parse(previous) if previous is not None else None
    for text in texts:
        start, start_cpu = time.perf_counter(), time.process_time()
        doc = parse(text, previous=before)
        check_document(doc, load_examples(doc, path), path, slow=slow)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return wall, cpu


def summary(label: str, wall: list[float], cpu: list[float]) -> float:
    wall, cpu = sorted(wall), sorted(cpu)
    median = statistics.median(wall)
    p90 = wall[min(len(wall) - 1, round(0.9 * (len(wall) - 1)))]
    print(
        f"{label:<32} median {median:6.1f} ms  p90 {p90:6.1f} ms  min {wall[0]:6.1f} ms"
        f"  (CPU median {statistics.median(cpu):5.1f} ms)"
    )
    return median


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--runs", type=int, default=30)
    options.add_argument("--profile", action="store_true", help="print a cProfile of warm runs")
    args = options.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "big.examples.jsonl").write_text(build_examples(), encoding="utf-8")
        path = folder / "big.prompt"
        text = build_prompt("big.examples.jsonl")
        path.write_text(text, encoding="utf-8")
        doc = parse(text)
        start = time.perf_counter()
        findings = check_document(
            doc, load_examples(doc, path), path
        )  # warm-up: reads and caches the examples file
        cold = (time.perf_counter() - start) * 1000
        print(
            f"prompt: {len(text.splitlines()):,} lines, {len(doc.names):,} Jinja names, "
            f"{len(doc.tokens):,} tokens; examples: {EXAMPLE_LINES:,} lines"
        )
        print(f"findings: {len(findings)} ({', '.join(sorted({f.code for f in findings}))})")
        print(f"first check (examples file read and parsed): {cold:.1f} ms")
        # Three kinds of warm check (the examples file is parsed and cached in all of them):
        # - the same text again: several features checking one version;
        # - a front matter edit (tuning `config:`): the body's analysis and compiled template
        #   are reused;
        # - a body edit (a keystroke in the template): everything but the examples is redone.
        same = [text] * args.runs
        front = [
            text.replace("max_tokens: 400", f"max_tokens: {401 + n}") for n in range(args.runs)
        ]
        body = [f"{text}Run {n}.\n" for n in range(args.runs)]
        # - a prose edit (a word typed in a line of plain text): the editor keeps the analysis
        prose_line = next(line for line in text.split("\n")[40:] if line and "{" not in line)
        prose = [text.replace(prose_line, f"{prose_line} word{n}", 1) for n in range(args.runs)]
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            time_runs(body, path)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
            return 0
        results = {
            "same text": summary(f"same text, {args.runs} runs", *time_runs(same, path)),
            "front matter edit": summary(
                f"front matter edit, {args.runs} runs", *time_runs(front, path)
            ),
            "body edit": summary(f"body edit, {args.runs} runs", *time_runs(body, path)),
            "body edit, while typing": summary(
                "body edit, checks run while typing", *time_runs(body, path, slow=False)
            ),
            "prose edit, while typing": summary(
                "prose edit, checks run while typing",
                *time_runs(prose, path, slow=False, previous=text),
            ),
        }
        for label, median in results.items():
            print(f"target < 50 ms ({label}): {'met' if median < 50 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
