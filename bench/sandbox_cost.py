"""What the code_tests sandbox costs: one test run under bubblewrap against the same run in a
plain limited subprocess (the ideal without isolation), median of N runs each.

Run: python bench/sandbox_cost.py [N]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from prompt_lsp.evaluation import metrics, sandbox

SOLUTION = "def add(a, b):\n    return a + b\n"
TESTS = "assert add(2, 3) == 5\n"


def median_ms(runs: int) -> float:
    times = []
    for index in range(runs):
        metrics._run_code_tests.cache_clear()
        started = time.perf_counter()
        score = metrics.run_code_tests(SOLUTION + f"# {index}\n", TESTS, 10.0)
        times.append((time.perf_counter() - started) * 1000)
        assert score.score == 1.0, score.reason
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    problem = sandbox.sandbox_problem()
    if problem is not None:
        print(f"no sandbox here: {problem}")
        return
    sandboxed = median_ms(runs)
    os.environ[sandbox.UNSANDBOXED_VARIABLE] = "1"
    sandbox.sandbox_problem = lambda: "measuring the plain subprocess"  # type: ignore[assignment]
    plain = median_ms(runs)
    print(f"code_tests, median of {runs} runs")
    print(f"  bubblewrap sandbox   {sandboxed:7.1f} ms")
    print(f"  plain subprocess     {plain:7.1f} ms")
    print(f"  ratio                {sandboxed / plain:7.2f}x")


if __name__ == "__main__":
    main()
