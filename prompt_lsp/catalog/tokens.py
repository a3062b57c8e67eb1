"""Special tokens: the seed tokens, the chat-template tokens of common model families, and a
file's own `tokens:`.

Pairs (`closes`) are only the delimiters a prompt author writes around a span: BOS/EOS tokens are
not paired, because the end-of-sequence token is normally produced by the model, not the prompt.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class SpecialToken:
    """A token with a meaning to a model or to this prompt's own conventions."""

    text: str
    meaning: str
    family: str
    closes: str | None = None  # for a closing token, the opening token it closes


@dataclass(frozen=True)
class TokenFamily:
    """The special tokens of a chat template, and the model ids that use it."""

    name: str
    tokens: tuple[SpecialToken, ...]
    model_patterns: tuple[str, ...]  # lowercase substrings of model ids


def _family(name: str, patterns: tuple[str, ...], *specs: tuple[str, ...]) -> TokenFamily:
    tokens = tuple(SpecialToken(spec[0], spec[1], name, *spec[2:]) for spec in specs)
    return TokenFamily(name=name, tokens=tokens, model_patterns=patterns)


SEED_TOKENS: tuple[SpecialToken, ...] = (
    SpecialToken("<start>", "Seed token: opens a delimited span, e.g. the input.", "seed"),
    SpecialToken("<end>", "Seed token: closes the span opened by `<start>`.", "seed", "<start>"),
    SpecialToken("[SEP]", "Seed token: separates two segments of the input.", "seed"),
)

CHATML = _family(
    "ChatML",
    ("qwen", "gpt-3.5", "gpt-4", "gpt-5", "chatml", "hermes", "dolphin", "smollm", "yi-"),
    ("<|im_start|>", "ChatML: starts a message; the role (system, user, assistant) follows."),
    ("<|im_end|>", "ChatML: ends the current message.", "<|im_start|>"),
    ("<|endoftext|>", "End of text: document boundary; generation stops here."),
)

LLAMA3 = _family(
    "Llama 3",
    ("llama-3", "llama3", "llama_3"),
    ("<|begin_of_text|>", "Llama 3: beginning of the whole prompt (BOS)."),
    ("<|start_header_id|>", "Llama 3: opens a role header (system, user, assistant, ipython)."),
    (
        "<|end_header_id|>",
        "Llama 3: closes the role header; the message follows after a blank line.",
        "<|start_header_id|>",
    ),
    ("<|eot_id|>", "Llama 3: end of turn; ends the current message."),
    ("<|end_of_text|>", "Llama 3: end of the whole text (EOS); generation stops."),
)

LLAMA2_MISTRAL = _family(
    "Llama 2 / Mistral",
    ("llama-2", "llama2", "llama_2", "codellama", "mistral", "mixtral", "codestral"),
    ("[INST]", "Llama 2 / Mistral: opens a user instruction."),
    ("[/INST]", "Llama 2 / Mistral: closes the user instruction; the answer follows.", "[INST]"),
    ("<<SYS>>", "Llama 2: opens the system prompt, inside the first `[INST]`."),
    ("<</SYS>>", "Llama 2: closes the system prompt.", "<<SYS>>"),
    ("<s>", "Llama 2 / Mistral: beginning of sequence (BOS), before each exchange."),
    ("</s>", "Llama 2 / Mistral: end of sequence (EOS), after each answer."),
)

GEMMA = _family(
    "Gemma",
    ("gemma",),
    ("<start_of_turn>", "Gemma: starts a turn; the role (`user` or `model`) follows."),
    ("<end_of_turn>", "Gemma: ends the current turn.", "<start_of_turn>"),
    ("<bos>", "Gemma: beginning of sequence (BOS)."),
    ("<eos>", "Gemma: end of sequence (EOS); generation stops."),
)

BERT = _family(
    "BERT",
    ("bert",),
    ("[CLS]", "BERT: classification token at the start of the input."),
    ("[SEP]", "BERT: separates two segments and ends the input."),
    ("[MASK]", "BERT: a masked token the model predicts."),
    ("[PAD]", "BERT: padding up to the sequence length."),
    ("[UNK]", "BERT: a token outside the vocabulary."),
)

# Order matters for family_for_model: the first family with a matching pattern wins, so ChatML
# fine-tunes of other bases ("nous-hermes-2-mixtral") come before the base families.
FAMILIES: tuple[TokenFamily, ...] = (CHATML, LLAMA3, LLAMA2_MISTRAL, GEMMA, BERT)

FILE_FAMILY = "file"
FILE_MEANING = "declared in this file's tokens:"


@functools.lru_cache(maxsize=1024)
def family_for_model(model_id: str | None) -> TokenFamily | None:
    """The token family a model id's name suggests (by substring), or None."""
    if not model_id:
        return None
    lowered = model_id.lower()
    for family in FAMILIES:
        if any(pattern in lowered for pattern in family.model_patterns):
            return family
    return None


@functools.cache
def _by_text() -> dict[str, SpecialToken]:
    # Seeds first so they keep their place in iteration order; a family's token of the same text
    # ([SEP]) replaces the seed's, since it carries the more specific meaning.
    table: dict[str, SpecialToken] = {token.text: token for token in SEED_TOKENS}
    for family in FAMILIES:
        for token in family.tokens:
            if token.text not in table or table[token.text].family == "seed":
                table[token.text] = token
    return table


def lookup_token(text: str) -> SpecialToken | None:
    """The known special token spelt `text` (seeds and families), or None."""
    return _by_text().get(text)


def all_known_tokens() -> tuple[SpecialToken, ...]:
    """Every seed and family token, one per text (seeds first)."""
    return tuple(_by_text().values())


@functools.cache
def _pairs() -> dict[str, str]:
    pairs: dict[str, str] = {}
    for token in (*SEED_TOKENS, *(t for family in FAMILIES for t in family.tokens)):
        if token.closes is not None:
            pairs.setdefault(token.closes, token.text)
    return pairs


def token_pairs() -> dict[str, str]:
    """Opening token -> closing token, over the seeds and every family."""
    return dict(_pairs())


def file_tokens(texts: list[str]) -> tuple[SpecialToken, ...]:
    """A file's `tokens:` entries as SpecialTokens (blank and repeated entries dropped)."""
    return _file_tokens(tuple(texts))


@functools.lru_cache(maxsize=256)
def _file_tokens(texts: tuple[str, ...]) -> tuple[SpecialToken, ...]:
    unique = dict.fromkeys(t for t in texts if isinstance(t, str) and t.strip())
    return tuple(SpecialToken(text, FILE_MEANING, FILE_FAMILY) for text in unique)
