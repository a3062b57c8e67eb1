"""Initialize, settings (`promptLsp` section) and file watching."""

from __future__ import annotations

from lsprotocol import types

from prompt_lsp.catalog import gguf, tokenizer
from prompt_lsp.catalog.models import DEFAULT_MODEL
from prompt_lsp.server.diagnostics import DiagnosticsScheduler
from prompt_lsp.server.documents import EXAMPLE_SUFFIXES
from prompt_lsp.server.server import PromptServer, contained
from prompt_lsp.server.state import Settings

SECTION = "promptLsp"


def register(ls: PromptServer, scheduler: DiagnosticsScheduler) -> None:
    @ls.feature(types.INITIALIZE)
    @contained()
    def initialize(ls: PromptServer, params: types.InitializeParams) -> None:
        ls.initialization_options = params.initialization_options
        ls.settings = Settings.from_client(params.initialization_options)

    @ls.feature(types.INITIALIZED)
    @contained()
    def initialized(ls: PromptServer, params: types.InitializedParams) -> None:
        tokenizer.warm_up((ls.settings.default_model,))
        gguf.model_control_tokens(ls.settings.default_model or DEFAULT_MODEL)  # read in a thread
        ls.spawn(_after_initialized(ls, scheduler))

    @ls.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    @contained()
    def did_change_configuration(
        ls: PromptServer, params: types.DidChangeConfigurationParams
    ) -> None:
        settings = params.settings
        if isinstance(settings, dict) and (SECTION in settings or "defaultModel" in settings):
            _apply(ls, scheduler, Settings.from_client(settings))
        else:  # the client only says something changed: pull it
            ls.spawn(_pull_settings(ls, scheduler))


async def _after_initialized(ls: PromptServer, scheduler: DiagnosticsScheduler) -> None:
    await _pull_settings(ls, scheduler)
    watched = (
        ls.client_capabilities.workspace
        and ls.client_capabilities.workspace.did_change_watched_files
    )
    if watched and watched.dynamic_registration:
        pattern = "**/*.{" + ",".join(s.lstrip(".") for s in EXAMPLE_SUFFIXES) + "}"
        await ls.client_register_capability_async(
            types.RegistrationParams(
                registrations=[
                    types.Registration(
                        id="prompt-lsp-examples-watcher",
                        method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                        register_options=types.DidChangeWatchedFilesRegistrationOptions(
                            watchers=[types.FileSystemWatcher(glob_pattern=pattern)]
                        ),
                    )
                ]
            )
        )


async def _pull_settings(ls: PromptServer, scheduler: DiagnosticsScheduler) -> None:
    workspace = ls.client_capabilities.workspace
    if not (workspace and workspace.configuration):
        return
    try:
        result = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
        )
    except Exception as err:
        ls.log_to_client(f"could not read the {SECTION} settings: {err!r}")
        return
    if result and isinstance(result[0], dict):
        _apply(ls, scheduler, Settings.from_client(result[0]))


def _apply(ls: PromptServer, scheduler: DiagnosticsScheduler, settings: Settings) -> None:
    changed = settings != ls.settings
    ls.settings = settings
    if changed:  # the default model shows in lenses and token counts, and changes checks
        for state in ls.open_states():
            scheduler.schedule(state.uri, 0)
        ls.refresh_views()
