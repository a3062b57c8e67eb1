"""`prompt-lsp render FILE`: the messages a prompt sends for one example."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prompt_lsp.format.examples import Example

from prompt_lsp.cli.common import EXIT_OK, CommandError, fail, make_console, read_prompt


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    render = subparsers.add_parser(
        "render",
        help="show the messages a prompt sends for one example",
        description="Render FILE for example N (1-based; default 1, or the defaults alone when "
        "there are no examples) and print the messages as they would be sent.",
    )
    render.add_argument("file", metavar="FILE", help="a .prompt file")
    render.add_argument("--example", type=int, metavar="N", help="the example's number (1-based)")
    render.add_argument("--json", action="store_true", help="print the messages as JSON")
    render.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prompt_lsp.evaluation.examples import load_examples
    from prompt_lsp.evaluation.session import EvalSetupError, check_parsable, render_example
    from prompt_lsp.format import parse

    try:
        path, text = read_prompt(args.file)
        doc = parse(text, bounded=False)
        check_parsable(doc)
        example_set = load_examples(doc, path)
        examples = example_set.examples if example_set else []
        example = _pick_example(examples, args.example)
        messages = render_example(doc, example)
    except (CommandError, EvalSetupError) as err:
        return fail(str(err))
    if args.json:
        print(json.dumps(messages, indent=2, ensure_ascii=False))
        return EXIT_OK
    from rich.rule import Rule

    console = make_console()
    label = f"example {example.index + 1} (id {example.id})" if example else "defaults only"
    console.print(f"{path.name} — {label}", style="dim", markup=False)
    for message in messages:
        console.print(Rule(message["role"], align="left"))
        console.print(message["content"], markup=False, highlight=False)
    return EXIT_OK


def _pick_example(examples: list[Example], number: int | None) -> Example | None:
    if not examples:
        if number not in (None, 1):
            raise CommandError("this prompt has no examples; omit --example to render the defaults")
        return None
    chosen = 1 if number is None else number
    if not 1 <= chosen <= len(examples):
        raise CommandError(f"--example must be between 1 and {len(examples)}")
    return examples[chosen - 1]
