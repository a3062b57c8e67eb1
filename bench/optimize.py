"""Optimize on the embedded model: held-out gain, calls and wall time per sample.

    python bench/optimize.py [--budget 300] [--samples route-ticket classify-sentiment]

Each sample is copied into a fresh folder (an empty response cache and history), so every call
is a real generation of local/gemma-3-270m. Printed per sample: the original and the winner on
the held-out test split with the paired 95% confidence interval of the gain, the model calls
used against the budget, and the wall time. Target (issue 14): on the weak sample
(route-ticket), a held-out gain whose interval excludes zero within 300 calls.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prompt_lsp.evaluation.optimize import OptimizeSettings, optimize_prompt  # noqa: E402
from prompt_lsp.evaluation.options import EvalOptions  # noqa: E402


async def bench_sample(name: str, budget: int) -> None:
    source = ROOT / "samples" / name
    with tempfile.TemporaryDirectory(prefix="optimize-bench-") as folder:
        work = Path(folder) / name
        shutil.copytree(source, work)
        (work / ".git").mkdir()  # the state folder goes here, empty
        prompt = next(work.glob("*.prompt"))
        started = time.perf_counter()
        report = await optimize_prompt(
            prompt, prompt.read_text(), EvalOptions(), OptimizeSettings(budget=budget)
        )
        wall = time.perf_counter() - started
    split = report.split
    winner = report.winner
    stats = report.stats
    print(f"## {name}  ({len(split.train)}/{len(split.validation)}/{len(split.test)} split)")
    print(
        f"  original  validation {report.baseline.validation:.3f}  test {report.baseline.test:.3f}"
    )
    if winner is not None:
        print(
            f"  winner    validation {winner.validation:.3f}  test {winner.test}  ({winner.change})"
        )
    if stats is not None:
        print(
            f"  held-out gain {stats.mean_delta:+.3f}  95% CI [{stats.ci_low:+.3f}, "
            f"{stats.ci_high:+.3f}]  n={stats.n}  p={stats.p_value:.3f}  "
            f"CI excludes zero: {'yes' if stats.significant else 'no'}"
        )
    print(f"  verdict: {report.verdict()}")
    print(
        f"  calls {report.calls}/{budget} ({report.calls / budget:.0%} of the budget)  "
        f"candidates {len(report.candidates)}  wall {wall:.0f} s "
        f"({wall / max(1, report.calls):.2f} s/call)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--samples", nargs="+", default=["route-ticket", "classify-sentiment"])
    args = parser.parse_args()
    for name in args.samples:
        asyncio.run(bench_sample(name, args.budget))


if __name__ == "__main__":
    main()
