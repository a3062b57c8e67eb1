"""`samples/summarize-news` on the embedded model, as a user runs it: `prompt-lsp eval` in a
subprocess, `--no-cache`, on a copy of the sample. Interleaved rounds of the default (the
examples in flight decoded together) and of `--concurrency 1` (one generation at a time, as
before batching), with the scores of both, and the ratio against the time issue 15 was
measured at (commit 1afe92c: 23.8–24.0 s on this 2-core machine, idle; target: under half).

    python bench/local_sample.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "summarize-news"
ISSUE_15_SECONDS = 23.9  # median at 1afe92c, measured with this script's workload


def run_once(folder: Path, extra: list[str]) -> tuple[float, dict[str, float]]:
    prompt = folder / "summarize-news.prompt"
    command = [sys.executable, "-m", "prompt_lsp", "eval", str(prompt), "--no-cache", "--json", "-"]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, *extra], capture_output=True, text=True, check=False, env=dict(os.environ)
    )
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: a threshold failed, still a full run
        raise SystemExit(f"prompt-lsp eval failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    return wall, {str(k): float(v) for k, v in report["aggregates"].items() if v is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    walls: dict[str, list[float]] = {"together": [], "one at a time": []}
    scores: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="prompt-lsp-sample-") as tmp:
        folder = Path(tmp) / "summarize-news"
        shutil.copytree(SAMPLE, folder)
        (folder / ".git").mkdir()  # the workspace root: history stays in the copy
        first = json.loads((folder / "news.examples.jsonl").read_text().splitlines()[0])["id"]
        run_once(folder, ["--example", str(first)])  # warm the page cache and the model file
        for _ in range(args.rounds):
            for name, extra in (("together", []), ("one at a time", ["--concurrency", "1"])):
                wall, aggregates = run_once(folder, extra)
                walls[name].append(wall)
                scores[name] = aggregates
    load = os.getloadavg()[0]
    print(
        f"samples/summarize-news, 14 examples, --no-cache, {args.rounds} rounds (load {load:.1f})"
    )
    for name, values in walls.items():
        shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(scores[name].items()))
        print(
            f"  {name:>13}: median {statistics.median(values):.2f} s "
            f"(min {min(values):.2f}, max {max(values):.2f}); {shown}"
        )
    together = statistics.median(walls["together"])
    alone = statistics.median(walls["one at a time"])
    print(f"  together / one at a time: {together / alone:.2f}")
    print(
        f"  together / issue 15's {ISSUE_15_SECONDS:.1f} s: {together / ISSUE_15_SECONDS:.2f} "
        "(target < 0.5)"
    )


if __name__ == "__main__":
    main()
