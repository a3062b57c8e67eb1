"""Many deployments behind one model name: a litellm Router, configured by the user.

When one key or one endpoint is the limit (rate limits, 429 storms), the user lists several
deployments of a model — other keys, other regions, other providers — with their request and
token budgets in a router file, in litellm's own `model_list` format (the one its proxy reads):

    model_list:
      - model_name: openai/gpt-4o-mini          # the name prompt files use
        litellm_params:
          model: openai/gpt-4o-mini
          api_key: os.environ/OPENAI_KEY_A
          rpm: 500                               # requests per minute for this deployment
          tpm: 200000                            # tokens per minute
      - model_name: openai/gpt-4o-mini
        litellm_params:
          model: azure/gpt-4o-mini
          api_base: https://example-eu.openai.azure.com
          api_key: os.environ/AZURE_KEY_EU
          rpm: 300
    router_settings:
      routing_strategy: usage-based-routing-v2   # keeps every deployment under its budgets

The file is named by `--router FILE` or `PROMPT_LSP_ROUTER` — never by a prompt file, since it
holds endpoints and keys. A run whose model is one of its `model_name`s sends every call through
`litellm.Router.acompletion`, which picks a deployment per call; the runner's retries (with
`Retry-After`) still apply on top, and the router's own default to zero retries.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROUTER_VARIABLE = "PROMPT_LSP_ROUTER"
_ROUTER_DEFAULTS = {"num_retries": 0, "routing_strategy": "simple-shuffle"}
_lock = threading.Lock()


class RouterConfigError(Exception):
    """The router file cannot be used (one line for the user)."""


@dataclass(frozen=True)
class RouterConfig:
    path: Path
    model_list: list[dict[str, Any]]
    settings: dict[str, Any]

    @property
    def model_names(self) -> frozenset[str]:
        return frozenset(str(d["model_name"]) for d in self.model_list)


def router_file(explicit: str | Path | None = None) -> Path | None:
    """The user's router file: `--router`, else PROMPT_LSP_ROUTER, else none."""
    value = explicit or os.environ.get(ROUTER_VARIABLE, "").strip()
    return Path(value).expanduser() if value else None


def read_router_config(path: Path) -> RouterConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise RouterConfigError(f"cannot read the router file {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise RouterConfigError(f"the router file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("model_list"), list):
        raise RouterConfigError(f"the router file {path} needs a `model_list:` of deployments")
    deployments = []
    for position, entry in enumerate(data["model_list"], 1):
        params = entry.get("litellm_params") if isinstance(entry, dict) else None
        if (
            not isinstance(entry, dict)
            or not entry.get("model_name")
            or not isinstance(params, dict)
        ):
            raise RouterConfigError(
                f"deployment {position} in {path} needs `model_name:` and `litellm_params:`"
            )
        if not params.get("model"):
            raise RouterConfigError(f"deployment {position} in {path} has no litellm_params.model")
        deployments.append(dict(entry))
    settings = data.get("router_settings") or {}
    if not isinstance(settings, dict):
        raise RouterConfigError(f"`router_settings:` in {path} must be a mapping")
    return RouterConfig(path.resolve(), deployments, {**_ROUTER_DEFAULTS, **settings})


def routed_models(path: Path | None) -> frozenset[str]:
    """The model names the router serves (empty without a router file)."""
    if path is None:
        return frozenset()
    return _config(path.resolve(), _mtime(path)).model_names


def router_for(path: Path) -> Any:
    """The process's Router for this file (rebuilt when the file changes); imports litellm."""
    return _router(path.resolve(), _mtime(path))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError as err:
        raise RouterConfigError(f"cannot read the router file {path}: {err.strerror}") from err


@functools.lru_cache(maxsize=8)
def _config(path: Path, _mtime: float) -> RouterConfig:
    return read_router_config(path)


@functools.lru_cache(maxsize=4)
def _router(path: Path, mtime: float) -> Any:
    from prompt_lsp.evaluation.providers import load_litellm

    config = _config(path, mtime)
    litellm = load_litellm()
    with _lock:
        try:
            return litellm.Router(model_list=config.model_list, **config.settings)
        except Exception as err:  # litellm's own validation of the file
            raise RouterConfigError(f"litellm cannot build a router from {path}: {err}") from err
