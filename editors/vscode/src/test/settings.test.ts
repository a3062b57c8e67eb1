import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { DEFAULT_SETTINGS, PromptLspSettings, readSettings } from '../settings';

function from(values: Partial<Record<keyof PromptLspSettings, unknown>>) {
  return readSettings((key) => values[key]);
}

describe('readSettings', () => {
  it('returns the defaults when nothing is set', () => {
    assert.deepEqual(from({}), {
      serverCommand: [],
      defaultModel: 'local/gemma-3-270m',
      concurrency: 8,
      cache: true,
      debounce: 150,
      historyPath: '',
      templateLanguage: 'auto',
    });
    assert.deepEqual(from({}), DEFAULT_SETTINGS);
  });

  it('passes valid values through', () => {
    assert.deepEqual(
      from({
        serverCommand: ['uv', 'run', 'prompt-lsp'],
        defaultModel: 'openai/gpt-4o-mini',
        concurrency: 2,
        cache: false,
        debounce: 0,
        historyPath: '/tmp/history',
        templateLanguage: 'handlebars',
      }),
      {
        serverCommand: ['uv', 'run', 'prompt-lsp'],
        defaultModel: 'openai/gpt-4o-mini',
        concurrency: 2,
        cache: false,
        debounce: 0,
        historyPath: '/tmp/history',
        templateLanguage: 'handlebars',
      },
    );
  });

  it('replaces values of the wrong type by the defaults', () => {
    assert.deepEqual(
      from({
        serverCommand: 'prompt-lsp',
        defaultModel: '  ',
        concurrency: 0,
        cache: 'yes',
        debounce: -5,
        historyPath: 3,
        templateLanguage: 'liquid',
      }),
      DEFAULT_SETTINGS,
    );
    assert.deepEqual(from({ serverCommand: ['a', 1] }).serverCommand, []);
    assert.equal(from({ concurrency: 3.7 }).concurrency, 3);
  });
});
