"""Token counting with tiktoken, strictly offline.

litellm ships tiktoken's BPE files in `litellm/litellm_core_utils/tokenizers/`, named as tiktoken
caches them: the SHA-1 of the blob URL. We build the `tiktoken.Encoding` from those files
ourselves (checking their SHA-256) instead of calling `tiktoken.get_encoding`, because tiktoken
falls back to an HTTP download with no timeout when its cache misses or mismatches. When no file
is usable, counts fall back to a characters/4 heuristic. Nothing here ever touches the network.

OpenAI models get their exact encoding; every other model is approximated with cl100k_base (the
label says so). Text is encoded as ordinary text: a special token written in a prompt counts as
the pieces it is spelt with.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prompt_lsp.catalog.models import DEFAULT_MODEL, litellm_dir, lookup_model

if TYPE_CHECKING:
    import tiktoken

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_ENDOFTEXT = "<|endoftext|>"
_ENDOFPROMPT = "<|endofprompt|>"
_R50K_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

CL100K = "cl100k_base"
O200K = "o200k_base"
P50K = "p50k_base"
HEURISTIC_LABEL = "≈ 4 characters per token"
_CHARS_PER_TOKEN = 4
_OPENAI_PROVIDERS = frozenset({"openai", "azure", "text-completion-openai", "azure_text"})


@dataclass(frozen=True)
class EncodingSpec:
    """How to build one tiktoken encoding (copied from tiktoken_ext.openai_public, tiktoken 0.14)."""

    name: str
    pat_str: str
    special_tokens: dict[str, int]
    sha256: str

    @property
    def cache_key(self) -> str:
        """The file name tiktoken's cache gives this encoding's BPE file."""
        return hashlib.sha1(_BLOB.format(self.name).encode()).hexdigest()


SPECS: dict[str, EncodingSpec] = {
    CL100K: EncodingSpec(
        CL100K,
        _CL100K_PAT,
        {
            _ENDOFTEXT: 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            _ENDOFPROMPT: 100276,
        },
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    O200K: EncodingSpec(
        O200K,
        _O200K_PAT,
        {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    P50K: EncodingSpec(
        P50K,
        _R50K_PAT,
        {_ENDOFTEXT: 50256},
        "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
    ),
}

# Encodings tiktoken maps some models to, counted with one we have (same ranks for plain text).
_SUBSTITUTES = {"o200k_harmony": O200K, "p50k_edit": P50K, "r50k_base": P50K, "gpt2": P50K}


def tokenizer_dir() -> Path | None:
    """litellm's bundled tokenizer directory (tiktoken cache layout), if litellm is installed."""
    base = litellm_dir()
    return None if base is None else base / "litellm_core_utils" / "tokenizers"


def _use_bundled_cache() -> None:
    # So that tiktoken (and litellm, which does the same on import) also find the bundled files.
    bundled = tokenizer_dir()
    if bundled is not None and bundled.is_dir():
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(bundled))


def _candidate_files(spec: EncodingSpec) -> list[Path]:
    dirs = [os.environ.get("TIKTOKEN_CACHE_DIR"), tokenizer_dir()]
    return [Path(d) / spec.cache_key for d in dirs if d]


def _read_ranks(spec: EncodingSpec) -> dict[bytes, int] | None:
    """The BPE ranks from the first candidate file whose SHA-256 matches, or None."""
    for path in _candidate_files(spec):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() != spec.sha256:
            continue
        fields = data.split()  # "<base64 token> <rank>" per line
        return dict(
            zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True)
        )
    return None


_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding | None] = {}


def get_encoding(name: str) -> tiktoken.Encoding | None:
    """The named encoding built from local files (cached), or None when unavailable."""
    if name in _encodings:
        return _encodings[name]
    with _lock:  # one load per encoding even when the server warms it in a thread
        if name not in _encodings:
            _encodings[name] = _load_encoding(name)
        return _encodings[name]


def _load_encoding(name: str) -> tiktoken.Encoding | None:
    spec = SPECS.get(name)
    if spec is None:
        return None
    _use_bundled_cache()
    try:
        import tiktoken

        ranks = _read_ranks(spec)
        if ranks is None:
            return None
        return tiktoken.Encoding(
            name, pat_str=spec.pat_str, mergeable_ranks=ranks, special_tokens=spec.special_tokens
        )
    except Exception:  # a broken tiktoken install or file must never break the editor
        return None


@dataclass(frozen=True)
class _Choice:
    encoding: str
    exact: bool


@functools.lru_cache(maxsize=1024)
def _choose(model_id: str | None) -> _Choice:
    """The encoding for a model: the exact one when tiktoken knows the model, else cl100k_base."""
    model_id = (model_id or DEFAULT_MODEL).strip()
    encoding = _tiktoken_encoding_for(model_id.rsplit("/", 1)[-1])
    if encoding is not None:
        return _Choice(_SUBSTITUTES.get(encoding, encoding), True)
    info = lookup_model(model_id)
    if info is not None and info.provider in _OPENAI_PROVIDERS:
        return _Choice(O200K, False)  # newer than this tiktoken: current OpenAI models use o200k
    return _Choice(CL100K, False)


def _tiktoken_encoding_for(model_name: str) -> str | None:
    try:
        from tiktoken.model import encoding_name_for_model

        return encoding_name_for_model(model_name)
    except Exception:  # KeyError for unknown models; anything else means no tiktoken
        return None


def _available(name: str) -> bool:
    if name in _encodings:
        return _encodings[name] is not None
    spec = SPECS.get(name)
    return spec is not None and any(path.is_file() for path in _candidate_files(spec))


def tokenizer_label(model_id: str | None) -> str:
    """What `count_tokens` uses for this model: "o200k_base", "≈ cl100k_base", ...

    Does not load the encoding: before the first count it only checks that the file is there.
    """
    choice = _choose(model_id)
    if not _available(choice.encoding):
        return HEURISTIC_LABEL
    return choice.encoding if choice.exact else f"≈ {choice.encoding}"


def heuristic_count(text: str) -> int:
    """Tokens estimated as characters / 4, rounded up."""
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


@functools.lru_cache(maxsize=64)
def _count(text: str, encoding_name: str) -> int:
    encoding = get_encoding(encoding_name)
    if encoding is None:
        return heuristic_count(text)
    return len(encoding.encode_ordinary(text))


def count_tokens(text: str, model_id: str | None = None) -> int:
    """Tokens in `text` for `model_id` (None: the default model). Never raises, never downloads.

    The first call for an encoding loads it (a few hundred ms; see `warm_up`); later calls on the
    same text are cached.
    """
    if not text:
        return 0
    return _count(text, _choose(model_id).encoding)


def warm_up(model_ids: tuple[str | None, ...] = (None,)) -> threading.Thread:
    """Load the encodings for these models in a daemon thread, off the typing path."""
    names = tuple(dict.fromkeys(_choose(m).encoding for m in model_ids))

    def load() -> None:
        for name in names:
            get_encoding(name)

    thread = threading.Thread(target=load, name="prompt-lsp-tokenizer-warm-up", daemon=True)
    thread.start()
    return thread
