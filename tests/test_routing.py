"""Many deployments behind one model name: the user's litellm router file spreads a run's calls
over two mock OpenAI-compatible deployments on loopback, within their request budgets."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from mock_openai import MockOpenAI

from prompt_lsp.cli import main
from prompt_lsp.evaluation.session import EvalOptions, EvalSetupError, evaluate_prompt

PROMPT = """\
---
model: openai/shared-model
examples: cases.jsonl
metrics: [exact_match]
eval: {concurrency: 4}
---
user:
Item {{ n }}
"""


def _workspace(tmp_path: Path, count: int) -> Path:
    (tmp_path / ".git").mkdir()
    rows = [{"id": f"e{i}", "input": {"n": i}, "expected": f"ok {i}"} for i in range(count)]
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "routed.prompt"
    path.write_text(PROMPT)
    return path


def _router_file(tmp_path: Path, deployments: list[tuple[MockOpenAI, int]], strategy: str) -> Path:
    entries = "".join(
        textwrap.dedent(
            f"""\
              - model_name: openai/shared-model
                litellm_params:
                  model: openai/shared-model
                  api_base: {server.base_url}
                  api_key: os.environ/DEPLOYMENT_KEY_{index}
                  rpm: {rpm}
            """
        )
        for index, (server, rpm) in enumerate(deployments)
    )
    path = tmp_path / "router.yaml"
    path.write_text(f"model_list:\n{entries}router_settings:\n  routing_strategy: {strategy}\n")
    return path


@pytest.fixture
def deployments(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DEPLOYMENT_KEY_0", "sk-deployment-zero-000")
    monkeypatch.setenv("DEPLOYMENT_KEY_1", "sk-deployment-one-111")
    monkeypatch.delenv("PROMPT_LSP_ROUTER", raising=False)
    with MockOpenAI(latency_s=0.01) as first, MockOpenAI(latency_s=0.01) as second:
        yield first, second


async def test_a_run_spreads_over_two_deployments_with_their_own_keys(
    deployments: tuple[MockOpenAI, MockOpenAI], tmp_path: Path
) -> None:
    first, second = deployments
    path = _workspace(tmp_path, 40)
    router = _router_file(tmp_path, [(first, 600), (second, 600)], "simple-shuffle")
    report = await evaluate_prompt(path, path.read_text(), EvalOptions(router=str(router)))
    assert report.n_ok == 40
    assert first.count > 0 and second.count > 0
    assert first.count + second.count == 40
    assert {r.headers["Authorization"] for r in first.requests} == {"Bearer sk-deployment-zero-000"}
    assert {r.headers["Authorization"] for r in second.requests} == {"Bearer sk-deployment-one-111"}


async def test_a_deployment_gets_no_more_than_its_request_budget(
    deployments: tuple[MockOpenAI, MockOpenAI], tmp_path: Path
) -> None:
    first, second = deployments
    path = _workspace(tmp_path, 30)
    router = _router_file(tmp_path, [(first, 5), (second, 1000)], "usage-based-routing-v2")
    report = await evaluate_prompt(path, path.read_text(), EvalOptions(router=str(router)))
    assert report.n_ok == 30
    # its budget: 5 requests a minute (litellm counts per calendar minute; a run may span two)
    per_minute = Counter(int(request.at // 60) for request in first.requests)
    assert first.count > 0 and max(per_minute.values()) <= 5, per_minute
    assert second.count == 30 - first.count


def test_the_cli_takes_the_router_from_the_environment(
    deployments: tuple[MockOpenAI, MockOpenAI],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = deployments
    path = _workspace(tmp_path, 12)
    monkeypatch.setenv(
        "PROMPT_LSP_ROUTER",
        str(_router_file(tmp_path, [(first, 60), (second, 60)], "simple-shuffle")),
    )
    assert main(["eval", str(path), "--json", "-"]) in (0, 1)
    report = json.loads(capsys.readouterr().out)
    assert report["n_ok"] == 12 and first.count + second.count == 12


async def test_a_broken_router_file_is_one_clear_line(tmp_path: Path) -> None:
    path = _workspace(tmp_path, 2)
    router = tmp_path / "router.yaml"
    router.write_text("model_list: {not: a list}\n")
    with pytest.raises(EvalSetupError, match="needs a `model_list:`"):
        await evaluate_prompt(path, path.read_text(), EvalOptions(router=str(router)))
