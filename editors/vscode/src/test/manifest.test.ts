/** Keeps package.json, the grammar, the language configuration and the code in agreement. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { DEFAULT_SETTINGS, SECTION } from '../settings';

// The tests are bundled to out/test/*.js; the extension root is two levels up.
const root = path.resolve(__dirname, '..', '..');
const readJson = (rel: string): any => JSON.parse(fs.readFileSync(path.join(root, rel), 'utf8'));
const pkg = readJson('package.json');
const extensionSource = fs.readFileSync(path.join(root, 'src', 'extension.ts'), 'utf8');

describe('package.json', () => {
  it('has the identity vsce needs', () => {
    assert.equal(pkg.name, 'prompt-lsp');
    assert.equal(pkg.publisher, 'prompt-lsp');
    assert.equal(pkg.license, 'MIT');
    assert.ok(pkg.displayName && pkg.description && pkg.repository);
    assert.equal(pkg.engines.vscode, '^1.82.0');
    assert.deepEqual(pkg.activationEvents, ['onLanguage:prompt']);
    assert.equal(pkg.main, './out/extension.js');
    assert.ok(fs.existsSync(path.join(root, 'LICENSE')));
    assert.ok(fs.existsSync(path.join(root, 'README.md')));
  });

  it('contributes the prompt language with its grammar and configuration', () => {
    const lang = pkg.contributes.languages.find((l: any) => l.id === 'prompt');
    assert.ok(lang);
    assert.deepEqual(lang.extensions, ['.prompt', '.prompty']);
    assert.match(extensionSource, /export const LANGUAGE_ID = 'prompt';/);

    const grammar = pkg.contributes.grammars.find((g: any) => g.language === 'prompt');
    assert.equal(grammar.scopeName, 'source.prompt');
    assert.deepEqual(grammar.embeddedLanguages, { 'meta.embedded.block.yaml': 'yaml' });
    const tm = readJson(grammar.path);
    assert.equal(tm.scopeName, 'source.prompt');
    assert.match(JSON.stringify(tm), /"include":"source\.yaml"/);
    assert.match(JSON.stringify(tm), /"contentName":"meta\.embedded\.block\.yaml"/);

    const conf = readJson(lang.configuration);
    assert.deepEqual(conf.comments.blockComment, ['{#', '#}']);
    const pairs = conf.autoClosingPairs.map((p: any) => `${p.open} ${p.close}`);
    for (const pair of ['{{ }}', '{% %}', '{# #}']) {
      assert.ok(pairs.includes(pair), pair);
    }
    assert.ok(conf.surroundingPairs.length > 0);
  });

  it('declares every setting with the default the code uses', () => {
    const props = pkg.contributes.configuration.properties;
    for (const [key, value] of Object.entries(DEFAULT_SETTINGS)) {
      assert.ok(props[`${SECTION}.${key}`], `${SECTION}.${key} missing`);
      assert.deepEqual(props[`${SECTION}.${key}`].default, value, key);
    }
    const declared = Object.keys(props).filter((k) => k !== `${SECTION}.trace.server`);
    assert.deepEqual(declared.sort(), Object.keys(DEFAULT_SETTINGS).map((k) => `${SECTION}.${k}`).sort());
  });

  it('registers every contributed command and wraps the four server commands', () => {
    const contributed: string[] = pkg.contributes.commands.map((c: any) => c.command);
    for (const command of contributed) {
      assert.ok(extensionSource.includes(`'${command}'`), `${command} is not registered`);
    }
    for (const name of ['evaluate', 'cancelEvaluation', 'showRendered', 'compareWithPrevious']) {
      assert.ok(contributed.includes(`promptLsp.${name}Active`), name);
      assert.ok(extensionSource.includes(`'prompt-lsp.${name}'`), name);
    }
    const evaluate = pkg.contributes.commands.find((c: any) => c.command === 'promptLsp.evaluateActive');
    assert.equal(`${evaluate.category}: ${evaluate.title}`, 'Prompt: Evaluate');
  });

  it('bundles the client instead of shipping node_modules', () => {
    assert.match(pkg.scripts.bundle, /--bundle/);
    assert.match(pkg.scripts.bundle, /--external:vscode/);
    assert.match(pkg.scripts.package, /--no-dependencies/);
    const ignore = fs.readFileSync(path.join(root, '.vscodeignore'), 'utf8');
    assert.match(ignore, /^node_modules\/\*\*$/m);
    assert.match(ignore, /^src\/\*\*$/m);
  });
});
