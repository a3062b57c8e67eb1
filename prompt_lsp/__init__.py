"""prompt-lsp: a language server and CLI for .prompt files."""

__version__ = "0.1.0"
