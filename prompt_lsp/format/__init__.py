"""Parse `.prompt` files into a document model with source ranges. Pure: no I/O."""

from prompt_lsp.format.model import PromptDocument
from prompt_lsp.format.parser import parse

__all__ = ["PromptDocument", "parse"]
