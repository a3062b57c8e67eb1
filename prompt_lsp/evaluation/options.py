"""What a caller gives a run and hears back from it: options, setup errors, progress."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prompt_lsp.evaluation.providers import Transport
    from prompt_lsp.evaluation.runner import RetryPolicy


class EvalSetupError(Exception):
    """The run cannot start (no examples, a render error, an unknown metric, a missing key or
    extra). The message is one line meant for the user."""


@dataclass
class EvalOptions:
    model: str | None = None  # overrides the file's model
    concurrency: int | None = None
    repeat: int | None = None
    use_cache: bool = True
    timeout: float | None = None
    workspace_root: Path | None = None
    example_ids: list[str] | None = None  # run only these
    default_model: str | None = None  # editor setting; the file's `model:` wins over it
    template_language: str | None = None  # editor setting; the file's `template:` wins over it
    retry: RetryPolicy | None = None  # tests and benchmarks tune backoff
    transport: Transport | None = None  # default: providers.RunTransport
    router: str | None = None  # the user's router file (else PROMPT_LSP_ROUTER); see routing
    allowed_hosts: list[str] | None = None  # the user's: may receive keys from the environment


@dataclass
class ProgressEvent:
    done: int
    total: int
    failed: int
    example_id: str | None
    eta_s: float | None
