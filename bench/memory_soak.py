"""Memory of the language server over rounds of open / edit / close, against the real server
over stdio (`python -m prompt_lsp serve`).

Each round opens DOCS prompts (the 2,000-line prompt of `check_speed.py` and small ones),
applies random edits to each (out-of-range and reversed ranges included, as a fuzzer would),
asks for hover, completion, semantic tokens, inlay hints and code lenses along the way, waits
for the diagnostics, then closes every document and waits for the server to go idle. The
server's resident memory (VmRSS) is printed after every round.

The first round loads what stays loaded for the life of the process (tokenizer tables, the
model catalogue, the template environment); the start figure is taken after it. Target: after
the last round, RSS back within 20% of the start.

Run: python bench/memory_soak.py [--rounds N] [--docs N] [--edits N] [--seed S]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_speed import build_examples, build_prompt  # noqa: E402
from lsp_latency import TIMEOUT, BenchClient, start, stop  # noqa: E402

TARGET_RATIO = 1.2
IDLE_S = 6.0  # the server collects garbage when nobody has typed for a few seconds
PIECES = ["a", " word", "{{ topic }}", "\n", "\r\n", "{% if x %}", "{% endif %}", "😀", "é", ""]


def server_pid() -> int:
    """The pid of the one `prompt_lsp serve` child of this process (from /proc)."""
    for task in Path("/proc/self/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"prompt_lsp" in cmdline:
                return int(child)
    raise RuntimeError("no prompt_lsp server among the children")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def random_change(rng: random.Random, lines: int) -> types.TextDocumentContentChangePartial:
    def position() -> types.Position:
        return types.Position(rng.randrange(lines + 3), rng.randrange(120))

    text = "".join(rng.choice(PIECES) for _ in range(rng.randrange(4)))
    return types.TextDocumentContentChangePartial(
        range=types.Range(position(), position()), text=text
    )


async def one_round(
    client: BenchClient, root: Path, rng: random.Random, docs: int, edits: int, round_no: int
) -> None:
    big = build_prompt("news.examples.jsonl")
    small = "---\nmodel: openai/gpt-4o-mini\nexamples: news.examples.jsonl\n---\nuser:\nAbout {{ topic }}.\n"
    uris = []
    for index in range(docs):
        text = big if index % 2 == 0 else small
        uri = (root / f"doc{round_no}_{index}.prompt").as_uri()
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id="prompt", version=1, text=text)
            )
        )
        uris.append((uri, text.count("\n")))
    last_versions = {}
    for uri, line_count in uris:
        ident = types.TextDocumentIdentifier(uri)
        for version in range(2, edits + 2):
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    [random_change(rng, line_count) for _ in range(rng.randrange(1, 3))],
                )
            )
            position = types.Position(rng.randrange(line_count), rng.randrange(40))
            await asyncio.wait_for(
                asyncio.gather(
                    client.text_document_hover_async(types.HoverParams(ident, position)),
                    client.text_document_completion_async(types.CompletionParams(ident, position)),
                    return_exceptions=True,
                ),
                TIMEOUT,
            )
        last_versions[uri] = edits + 1
        await asyncio.wait_for(
            asyncio.gather(
                client.text_document_semantic_tokens_full_async(types.SemanticTokensParams(ident)),
                client.text_document_inlay_hint_async(
                    types.InlayHintParams(
                        ident, types.Range(types.Position(0, 0), types.Position(line_count, 0))
                    )
                ),
                client.text_document_code_lens_async(types.CodeLensParams(ident)),
                return_exceptions=True,
            ),
            TIMEOUT,
        )
    for uri, version in last_versions.items():
        await client.diagnostics_for(uri, version)
    for uri, _ in uris:
        client.text_document_did_close(
            types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
        )


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".git").mkdir()
        (root / "news.examples.jsonl").write_text(build_examples())
        client, _, _ = await start(root)
        pid = server_pid()
        await asyncio.sleep(IDLE_S)
        initial = rss_mb(pid)
        print(f"after initialize: {initial:7.1f} MB")
        figures = []
        for round_no in range(args.rounds + 1):
            began = time.perf_counter()
            await one_round(client, root, rng, args.docs, args.edits, round_no)
            await asyncio.sleep(IDLE_S)
            figures.append(rss_mb(pid))
            label = "warm-up round" if round_no == 0 else f"round {round_no:2d}"
            print(
                f"{label:>16}: {figures[-1]:7.1f} MB  "
                f"({args.docs} documents, {args.docs * args.edits} edits, "
                f"{time.perf_counter() - began:.1f} s)"
            )
        await stop(client)
    start_mb, end_mb = figures[0], figures[-1]
    peak = max(figures)
    ratio = end_mb / start_mb
    print(
        f"start (after warm-up) {start_mb:.1f} MB, peak {peak:.1f} MB, end {end_mb:.1f} MB: "
        f"end/start {ratio:.2f} (target <= {TARGET_RATIO}); end/after-initialize "
        f"{end_mb / initial:.2f}"
    )
    return 0 if ratio <= TARGET_RATIO else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--docs", type=int, default=6)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
