/**
 * The `promptLsp.*` settings, read into a plain object. The same object is sent to the server as
 * `initializationOptions`; later changes reach it through `workspace/didChangeConfiguration`
 * (`synchronize.configurationSection`).
 *
 * No `vscode` import here, so that the unit tests run under plain Node.
 */

export const SECTION = 'promptLsp';

export interface PromptLspSettings {
  /** Executable plus leading arguments; empty = find `prompt-lsp` on PATH, else `python3 -m prompt_lsp`. */
  serverCommand: string[];
  /** Model used when a prompt's front matter has no `model:`. */
  defaultModel: string;
  /** Examples sent to the model at once during an evaluation. */
  concurrency: number;
  /** Reuse cached model responses. */
  cache: boolean;
  /** Milliseconds to wait after an edit before diagnostics are recomputed. */
  debounce: number;
  /** History folder; empty = `.prompt-lsp/` at the workspace root. */
  historyPath: string;
  /** Template language of files whose front matter names none; `auto` recognises it. */
  templateLanguage: string;
}

export const TEMPLATE_LANGUAGES = ['auto', 'jinja2', 'handlebars', 'mustache'];

export const DEFAULT_SETTINGS: Readonly<PromptLspSettings> = Object.freeze({
  serverCommand: [],
  defaultModel: 'local/gemma-3-270m',
  concurrency: 8,
  cache: true,
  debounce: 150,
  historyPath: '',
  templateLanguage: 'auto',
});

/** Reads one key of the section; returns undefined when unset (like `WorkspaceConfiguration.get`). */
export type SettingGetter = (key: keyof PromptLspSettings) => unknown;

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function nonNegativeNumber(value: unknown, fallback: number, minimum: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= minimum ? value : fallback;
}

/** Reads the settings, replacing any value of the wrong type by its default. */
export function readSettings(get: SettingGetter): PromptLspSettings {
  const serverCommand = get('serverCommand');
  const defaultModel = get('defaultModel');
  const cache = get('cache');
  const historyPath = get('historyPath');
  const templateLanguage = get('templateLanguage');
  return {
    serverCommand: isStringArray(serverCommand)
      ? serverCommand.filter((part) => part.trim() !== '')
      : [...DEFAULT_SETTINGS.serverCommand],
    defaultModel:
      typeof defaultModel === 'string' && defaultModel.trim() !== ''
        ? defaultModel.trim()
        : DEFAULT_SETTINGS.defaultModel,
    concurrency: Math.floor(nonNegativeNumber(get('concurrency'), DEFAULT_SETTINGS.concurrency, 1)),
    cache: typeof cache === 'boolean' ? cache : DEFAULT_SETTINGS.cache,
    debounce: nonNegativeNumber(get('debounce'), DEFAULT_SETTINGS.debounce, 0),
    historyPath: typeof historyPath === 'string' ? historyPath : DEFAULT_SETTINGS.historyPath,
    templateLanguage:
      typeof templateLanguage === 'string' && TEMPLATE_LANGUAGES.includes(templateLanguage)
        ? templateLanguage
        : DEFAULT_SETTINGS.templateLanguage,
  };
}
