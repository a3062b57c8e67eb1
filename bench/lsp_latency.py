"""Latency of the language server as an editor sees it, over stdio against the real server
(`python -m prompt_lsp serve`).

The document is the 2,000-line prompt of `check_speed.py` (prose, a variable every few lines,
loops, conditionals, role markers) with its 5,000-line JSONL examples file. Printed, as p50 / p99
in milliseconds:

- completion inside `{{ ` and after `model: `, on an unchanged version (~200 each);
- completion inside `{{ ` right after a keystroke (the server parses the new version first);
- every request kind (code action, completion, hover, definition, references, rename, lenses,
  inlay hints, semantic tokens, symbols, folding) sent right after a keystroke: each is answered
  for the version the keystroke made;
- hover on a variable (its examples values are read from the examples file);
- didChange → publishDiagnostics for that version (~50), raw and minus the debounce (150 ms);
- startup: process spawn → initialize answered, and initialize alone (several fresh servers).

Targets on this machine: completion, hover and each request after a keystroke p99 < 20 ms; diagnostics p99 < 100 ms after the
debounce; startup < 500 ms.

`--format dotprompt` times the same document written as a Dotprompt (Handlebars) file.

Run: python bench/lsp_latency.py [--samples N] [--diagnostics N] [--startups N] [--format F]
     python bench/lsp_latency.py --local-eval-only --startups 0   (typing during a local run)
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import to_fs_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_speed import as_dotprompt, build_examples, build_prompt  # noqa: E402

SERVER = [sys.executable, "-m", "prompt_lsp", "serve"]
DEBOUNCE_MS = 150
TIMEOUT = 30.0
TARGETS = {"completion": 20.0, "hover": 20.0, "diagnostics": 100.0, "startup": 500.0}


# ---------------------------------------------------------------- client


class BenchClient(LanguageClient):
    """A stdio client that records diagnostics as they arrive and answers the settings pull."""

    def __init__(self) -> None:
        super().__init__("prompt-lsp-bench", "1")
        self.published: dict[tuple[str, int | None], float] = {}  # (uri, version) -> arrival
        self.arrived = asyncio.Event()
        self.settings: dict[str, Any] = {"debounce": DEBOUNCE_MS}

        @self.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_publish(params: types.PublishDiagnosticsParams) -> None:
            self.published.setdefault((params.uri, params.version), time.perf_counter())
            self.arrived.set()

        @self.feature(types.WORKSPACE_CONFIGURATION)
        def on_configuration(params: types.ConfigurationParams) -> list[Any]:
            return [self.settings if item.section == "promptLsp" else None for item in params.items]

        @self.feature(types.WINDOW_LOG_MESSAGE)
        def on_log(params: types.LogMessageParams) -> None:
            if params.type == types.MessageType.Error:
                print(f"server error: {params.message}", file=sys.stderr)

        @self.feature(types.CLIENT_REGISTER_CAPABILITY)
        def on_register(params: types.RegistrationParams) -> None:
            return None

    async def diagnostics_for(self, uri: str, version: int) -> float:
        """When the diagnostics of `version` arrived (perf_counter seconds)."""

        async def wait() -> float:
            while (uri, version) not in self.published:
                self.arrived.clear()
                await self.arrived.wait()
            return self.published[(uri, version)]

        return await asyncio.wait_for(wait(), TIMEOUT)


def capabilities() -> types.ClientCapabilities:
    return types.ClientCapabilities(
        workspace=types.WorkspaceClientCapabilities(configuration=True),
        text_document=types.TextDocumentClientCapabilities(
            synchronization=types.TextDocumentSyncClientCapabilities(did_save=True),
            completion=types.CompletionClientCapabilities(
                completion_item=types.ClientCompletionItemOptions(snippet_support=False)
            ),
            hover=types.HoverClientCapabilities(content_format=[types.MarkupKind.Markdown]),
            publish_diagnostics=types.PublishDiagnosticsClientCapabilities(version_support=True),
        ),
        general=types.GeneralClientCapabilities(
            position_encodings=[types.PositionEncodingKind.Utf16]
        ),
    )


async def start(root: Path, settle: float = 0.0) -> tuple[BenchClient, float, float]:
    """A fresh server, initialized; with (spawn → initialize answered, initialize sent →
    answered) in ms. With `settle`, initialize is sent that many seconds after the spawn, when
    the server has finished importing and waits for input: the second figure is then the
    initialize request alone."""
    client = BenchClient()
    spawned = time.perf_counter()
    await client.start_io(*SERVER)
    if settle:
        await asyncio.sleep(settle)
    sent = time.perf_counter()
    await asyncio.wait_for(
        client.initialize_async(
            types.InitializeParams(
                capabilities=capabilities(),
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
                initialization_options={"promptLsp": {"debounce": DEBOUNCE_MS}},
            )
        ),
        TIMEOUT,
    )
    done = time.perf_counter()
    client.initialized(types.InitializedParams())
    return client, (done - spawned) * 1000, (done - sent) * 1000


async def stop(client: BenchClient) -> None:
    await asyncio.wait_for(client.shutdown_async(None), TIMEOUT)
    client.exit(None)
    await client.stop()


# ---------------------------------------------------------------- document helpers


class Document:
    """The client's copy of an open document, with incremental edits."""

    def __init__(self, client: BenchClient, path: Path, text: str) -> None:
        self.client, self.uri, self.text, self.version = client, path.as_uri(), text, 1
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=self.uri, language_id="prompt", version=1, text=text)
            )
        )

    def position(self, needle: str, offset: int = 0, nth: int = 0) -> types.Position:
        index = -1
        for _ in range(nth + 1):
            index = self.text.index(needle, index + 1)
        before = self.text[: index + offset]
        column = before[before.rfind("\n") + 1 :]
        return types.Position(before.count("\n"), len(column.encode("utf-16-le")) // 2)

    def insert(self, pos: types.Position, text: str) -> int:
        """Insert `text` at `pos` (ASCII lines only: no unit conversion needed)."""
        lines = self.text.split("\n")
        line = lines[pos.line]
        lines[pos.line] = line[: pos.character] + text + line[pos.character :]
        self.text = "\n".join(lines)
        self.version += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=self.uri, version=self.version
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(range=types.Range(pos, pos), text=text)
                ],
            )
        )
        return self.version

    def ident(self) -> types.TextDocumentIdentifier:
        return types.TextDocumentIdentifier(self.uri)


async def timed(coro) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await asyncio.wait_for(coro, TIMEOUT)
    return (time.perf_counter() - started) * 1000, result


# ---------------------------------------------------------------- measurements


async def measure_completion(doc: Document, pos: types.Position, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        ms, result = await timed(
            doc.client.text_document_completion_async(types.CompletionParams(doc.ident(), pos))
        )
        assert result is not None and result.items, "no completion items"
        times.append(ms)
    return times


async def measure_hover(doc: Document, pos: types.Position, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        ms, result = await timed(
            doc.client.text_document_hover_async(types.HoverParams(doc.ident(), pos))
        )
        assert result is not None, "no hover"
        times.append(ms)
    return times


async def measure_completion_while_typing(doc: Document, samples: int) -> list[float]:
    """A keystroke in the prose, then completion inside `{{ `: the new version is parsed first."""
    target = doc.position("Write for {{ ", offset=len("Write for {{ "), nth=10)
    prose_line = target.line + 1
    times = []
    for n in range(samples):
        doc.insert(types.Position(prose_line, 0), "abcdefghij"[n % 10])
        ms, result = await timed(
            doc.client.text_document_completion_async(types.CompletionParams(doc.ident(), target))
        )
        assert result is not None and result.items
        times.append(ms)
    return times


async def measure_completion_during_check(doc: Document, samples: int) -> list[float]:
    """A keystroke, a pause as long as the debounce (the check of the new version starts), then
    completion inside `{{ `: what a user who pauses and then types on meets."""
    target = doc.position("Write for {{ ", offset=len("Write for {{ "), nth=30)
    line = doc.position("Write for {{ ", nth=31).line
    times = []
    for n in range(samples):
        version = doc.insert(types.Position(line, 0), "pq"[n % 2])
        await asyncio.sleep(DEBOUNCE_MS / 1000 + 0.005)
        ms, result = await timed(
            doc.client.text_document_completion_async(types.CompletionParams(doc.ident(), target))
        )
        assert result is not None and result.items
        times.append(ms)
        await doc.client.diagnostics_for(doc.uri, version)
    return times


async def measure_diagnostics(doc: Document, samples: int) -> list[float]:
    """didChange → publishDiagnostics of that version, one change at a time."""
    line = doc.position("Write for {{ ", nth=20).line
    times = []
    for n in range(samples):
        sent = time.perf_counter()
        version = doc.insert(types.Position(line, 0), "xyz"[n % 3])
        arrived = await doc.client.diagnostics_for(doc.uri, version)
        times.append((arrived - sent) * 1000)
    return times


def request_kinds(doc: Document) -> dict[str, Any]:
    """Each request kind an editor sends, as a function of nothing (positions fixed up front)."""
    client, ident = doc.client, doc.ident()
    variable = doc.position("Write for {{ ", offset=len("Write for {{ ") + 1, nth=12)
    whole = types.Range(types.Position(0, 0), types.Position(len(doc.text.split("\n")), 0))
    return {
        "completion": lambda: client.text_document_completion_async(
            types.CompletionParams(ident, variable)
        ),
        "hover": lambda: client.text_document_hover_async(types.HoverParams(ident, variable)),
        "code action": lambda: client.text_document_code_action_async(
            types.CodeActionParams(
                ident, types.Range(variable, variable), types.CodeActionContext([])
            )
        ),
        "definition": lambda: client.text_document_definition_async(
            types.DefinitionParams(ident, variable)
        ),
        "references": lambda: client.text_document_references_async(
            types.ReferenceParams(
                text_document=ident,
                position=variable,
                context=types.ReferenceContext(include_declaration=True),
            )
        ),
        "prepare rename": lambda: client.text_document_prepare_rename_async(
            types.PrepareRenameParams(ident, variable)
        ),
        "code lens": lambda: client.text_document_code_lens_async(types.CodeLensParams(ident)),
        "inlay hints": lambda: client.text_document_inlay_hint_async(
            types.InlayHintParams(text_document=ident, range=whole)
        ),
        "semantic tokens": lambda: client.text_document_semantic_tokens_full_async(
            types.SemanticTokensParams(ident)
        ),
        "document symbols": lambda: client.text_document_document_symbol_async(
            types.DocumentSymbolParams(ident)
        ),
        "folding": lambda: client.text_document_folding_range_async(
            types.FoldingRangeParams(ident)
        ),
    }


async def measure_after_keystroke(doc: Document, samples: int) -> dict[str, list[float]]:
    """A keystroke in the prose, then one request of each kind: every answer is for the new
    version, so the server parses it first (the prose edit reuses the template analysis)."""
    line = doc.position("Write for {{ ", nth=40).line + 1
    kinds = request_kinds(doc)
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for n in range(samples):
        for kind, request in kinds.items():
            doc.insert(types.Position(line, 0), "klmno"[n % 5])
            ms, _ = await timed(request())
            times[kind].append(ms)
    return times


EVAL_EXAMPLES = 50


def build_eval_prompt() -> str:
    """A prompt with 50 inline examples, answered by litellm's mock with a delay, so a run
    lasts a few seconds and goes through the same code as a real provider."""
    examples = "".join(
        f"  - {{id: e{i}, input: {{topic: topic {i}}}, expected: ok}}\n"
        for i in range(EVAL_EXAMPLES)
    )
    return (
        "---\nmodel: openai/gpt-4o-mini\n"
        "config: {mock_response: ok, mock_delay: 0.25}\n"
        "input:\n  schema:\n    topic: string\n"
        f"examples:\n{examples}metrics: [exact_match]\neval: {{concurrency: 4, cache: false}}\n---\n"
        "Say ok about {{ topic }}.\n"
    )


LOCAL_EVAL_EXAMPLES = 6


def build_local_eval_prompt() -> str:
    """A prompt run by the embedded model (in its worker process), a few examples long."""
    examples = "".join(
        f"  - {{id: l{i}, input: {{topic: topic {i}}}, expected: ok}}\n"
        for i in range(LOCAL_EVAL_EXAMPLES)
    )
    return (
        "---\nmodel: local/gemma-3-270m\n"
        "config: {temperature: 0, max_tokens: 32}\n"
        "input:\n  schema:\n    topic: string\n"
        f"examples:\n{examples}metrics: [rougeL]\neval: {{cache: false}}\n---\n"
        "user:\nWrite two sentences about {{ topic }}.\n"
    )


async def measure_completion_during_evaluation(
    doc: Document, samples: int, local: bool = False
) -> list[float] | None:
    """Completion latency on the big prompt while an evaluation of another prompt runs in the
    same server (started with the Evaluate command, the first run of the session, so it
    includes loading litellm): 50 examples against litellm's mock, or with `local` a few
    examples on the embedded model."""
    client = doc.client
    path = Path(to_fs_path(doc.uri)).parent / ("local-eval.prompt" if local else "eval.prompt")
    path.write_text(build_local_eval_prompt() if local else build_eval_prompt(), encoding="utf-8")
    other = Document(client, path, path.read_text(encoding="utf-8"))
    await client.diagnostics_for(other.uri, 1)
    pos = doc.position("Write for {{ ", offset=len("Write for {{ "), nth=5)

    async def lens() -> str:
        lenses = await client.text_document_code_lens_async(types.CodeLensParams(other.ident()))
        return lenses[0].command.title if lenses else ""

    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="prompt-lsp.evaluate", arguments=[{"uri": other.uri}])
    )
    times: list[float] = []
    running = True
    while running and len(times) < samples * 10:
        for _ in range(10):
            times.append(
                (
                    await timed(
                        client.text_document_completion_async(
                            types.CompletionParams(doc.ident(), pos)
                        )
                    )
                )[0]
            )
            await asyncio.sleep(0.01)  # a typist's pace, not a flood
        running = (await lens()).startswith("Evaluating")
    title = await lens()
    print(f"evaluation during the samples: {title}")
    if not title.startswith("rougeL" if local else "exact_match 1.000"):
        print("  (the evaluation did not finish as expected)")
    return times


# ---------------------------------------------------------------- report


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def report(label: str, values: list[float], target: float | None = None, minus: float = 0.0):
    p50, p99 = percentile(values, 0.5) - minus, percentile(values, 0.99) - minus
    verdict = (
        ""
        if target is None
        else f"  target p99 < {target:.0f} ms: " + ("met" if p99 < target else "NOT met")
    )
    print(
        f"{label:<46} n={len(values):<4} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
        f"  max {max(values) - minus:7.1f} ms{verdict}"
    )


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".git").mkdir()
        (root / "big.examples.jsonl").write_text(build_examples(), encoding="utf-8")
        text = build_prompt("big.examples.jsonl")
        if args.format == "dotprompt":
            text = as_dotprompt(text)
        path = root / "big.prompt"
        path.write_text(text, encoding="utf-8")

        startups, initializes = [], []
        for _ in range(args.startups):
            client, startup, _ = await start(root)
            startups.append(startup)
            await stop(client)
            client, _, initialize = await start(root, settle=2.0)
            initializes.append(initialize)
            await stop(client)

        client, _, _ = await start(root)
        if args.local_eval_only:
            try:
                doc = Document(client, path, text)
                await client.diagnostics_for(doc.uri, 1)
                during = await measure_completion_during_evaluation(doc, args.samples, local=True)
                report("completion during a local-model evaluation", during, TARGETS["completion"])
            finally:
                await stop(client)
            return 0
        try:
            started = time.perf_counter()
            doc = Document(client, path, text)
            await client.diagnostics_for(doc.uri, 1)
            first = (time.perf_counter() - started) * 1000
            print(
                f"document: {len(text.splitlines()):,} lines; examples: "
                f"{len((root / 'big.examples.jsonl').read_text().splitlines()):,} lines; "
                f"first diagnostics after didOpen: {first:.0f} ms (examples file read cold)"
            )
            variable = doc.position("Write for {{ ", offset=len("Write for {{ "), nth=5)
            model = doc.position("model: ", offset=len("model: "))
            hover_at = doc.position("Write for {{ ", offset=len("Write for {{ ") + 1, nth=5)
            for pos in (variable, model, hover_at):  # warm-up: catalog, caches
                await client.text_document_completion_async(
                    types.CompletionParams(doc.ident(), pos)
                )
                await client.text_document_hover_async(types.HoverParams(doc.ident(), pos))

            n = args.samples
            report(
                "completion inside `{{ ` (same version)",
                await measure_completion(doc, variable, n),
                TARGETS["completion"],
            )
            report(
                "completion after `model: ` (same version)",
                await measure_completion(doc, model, n),
                TARGETS["completion"],
            )
            report(
                "hover on a variable (same version)",
                await measure_hover(doc, hover_at, n),
                TARGETS["hover"],
            )
            report(
                "completion inside `{{ ` after a keystroke",
                await measure_completion_while_typing(doc, n),
                TARGETS["completion"],
            )
            for kind, values in (await measure_after_keystroke(doc, args.kinds)).items():
                report(f"{kind} right after a keystroke", values, TARGETS["completion"])
            report(
                "completion inside `{{ ` while a check runs",
                await measure_completion_during_check(doc, args.diagnostics),
                TARGETS["completion"],
            )
            diagnostics = await measure_diagnostics(doc, args.diagnostics)
            report("didChange → diagnostics (raw)", diagnostics)
            report(
                f"didChange → diagnostics (minus {DEBOUNCE_MS} ms debounce)",
                diagnostics,
                TARGETS["diagnostics"],
                minus=DEBOUNCE_MS,
            )
            during = await measure_completion_during_evaluation(doc, n)
            report("completion during a 50-example evaluation", during, TARGETS["completion"])
        finally:
            await stop(client)

        for label, values in (
            ("startup: spawn → initialize answered", startups),
            ("initialize alone (server already up)", initializes),
        ):
            median = statistics.median(values)
            print(
                f"{label:<46} n={len(values):<4} median {median:6.0f} ms  max {max(values):6.0f} ms"
                f"  target < {TARGETS['startup']:.0f} ms: {'met' if median < TARGETS['startup'] else 'NOT met'}"
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--samples", type=int, default=200, help="completions / hovers")
    options.add_argument("--diagnostics", type=int, default=50, help="didChange samples")
    options.add_argument("--startups", type=int, default=5, help="fresh servers to time")
    options.add_argument(
        "--local-eval-only",
        action="store_true",
        help="only completion latency while the embedded model evaluates (needs the local extra)",
    )
    options.add_argument(
        "--kinds", type=int, default=50, help="samples of each request kind after a keystroke"
    )
    options.add_argument(
        "--format",
        choices=("prompt", "dotprompt"),
        default="prompt",
        help="the document as our Jinja `.prompt` or as a Dotprompt (Handlebars) file",
    )
    return asyncio.run(run(options.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
