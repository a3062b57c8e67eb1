/**
 * Activates the bundled extension (out/extension.js) against the fake `vscode` module and a fake
 * language server process, and checks its wiring: server start-up and arguments, settings sent as
 * initializationOptions, the palette commands, the score in the status bar, and the notification
 * shown when the server cannot be found.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { createFakeVscode, extensionRoot, fakeDocument, installFakeVscode, World } from './fakeVscode';

const world = new World();
installFakeVscode(createFakeVscode(world));

const fakeServer = path.join(__dirname, 'fakeServer.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const extension = require(path.join(extensionRoot, 'out', 'extension.js'));

function context(): { subscriptions: { dispose(): unknown }[] } {
  return { subscriptions: [] };
}

async function until<T>(probe: () => T | undefined, what: string, ms = 10000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; output:\n${world.output.join('')}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

function dispose(ctx: ReturnType<typeof context>): void {
  for (const d of ctx.subscriptions) {
    d.dispose();
  }
}

describe('extension with a server that starts', () => {
  const ctx = context();

  before(async () => {
    world.settings = {
      'promptLsp.serverCommand': [process.execPath, fakeServer],
      'promptLsp.defaultModel': 'openai/gpt-4o-mini',
      'promptLsp.concurrency': 3,
    };
    await extension.activate(ctx);
  });

  after(async () => {
    await extension.deactivate();
    dispose(ctx);
  });

  it('starts the server without error notifications', () => {
    assert.deepEqual(world.messages, []);
    assert.match(world.output.join(''), /Starting .*fakeServer\.js serve/);
  });

  it('registers the palette commands and the server commands', () => {
    for (const id of [
      'promptLsp.evaluateActive',
      'promptLsp.cancelEvaluationActive',
      'promptLsp.showRenderedActive',
      'promptLsp.compareWithPreviousActive',
      'promptLsp.restartServer',
      'prompt-lsp.evaluate',
      'prompt-lsp.showRendered',
    ]) {
      assert.ok(world.commands.has(id), id);
    }
  });

  it('shows the score of the active prompt only', async () => {
    const item = world.statusItems.find((i) => i.id === 'promptLsp.score');
    assert.ok(item);
    world.setActive(fakeDocument('file:///ws/a.prompt', 'prompt'));
    await until(() => item.visible, 'the status bar item');
    assert.equal(item.text, '$(beaker) rougeL 0.412 ▲0.051');
    assert.equal(item.tooltip, 'rougeL 0.412 (previous 0.361)');
    assert.equal(item.command.command, 'promptLsp.compareWithPreviousActive');

    world.setActive(fakeDocument('file:///ws/b.prompt', 'prompt'));
    assert.equal(item.visible, false);
    world.setActive(fakeDocument('file:///ws/a.py', 'python'));
    assert.equal(item.visible, false);
    world.setActive(undefined);
    assert.equal(item.visible, false);
  });

  it('runs a server command on the active document and shows returned text', async () => {
    world.setActive(fakeDocument('file:///ws/a.prompt', 'prompt'));
    const result = await world.commands.get('promptLsp.showRenderedActive')!();
    const echo = JSON.parse(result as string);
    assert.equal(echo.command, 'prompt-lsp.showRendered');
    assert.deepEqual(echo.arguments, [{ uri: 'file:///ws/a.prompt' }]);
    assert.deepEqual(echo.argv, ['serve']);
    assert.deepEqual(echo.initializationOptions, {
      serverCommand: [process.execPath, fakeServer],
      defaultModel: 'openai/gpt-4o-mini',
      concurrency: 3,
      cache: true,
      debounce: 150,
      historyPath: '',
      templateLanguage: 'auto',
      codeLens: true,
      scoreNotification: true,
    });
    assert.equal(world.opened.at(-1)?.content, result);
  });

  it('sends the promptLsp section when it changes', async () => {
    world.settings['promptLsp.debounce'] = 400;
    world.onDidChangeConfiguration.fire({ affectsConfiguration: (s) => s === 'promptLsp' || s === 'promptLsp.debounce' });
    await new Promise((r) => setTimeout(r, 100));
    const result = await world.commands.get('promptLsp.evaluateActive')!();
    const changes = JSON.parse(result as string).settingsChanges as any[];
    assert.ok(changes.some((s) => s?.promptLsp?.debounce === 400), JSON.stringify(changes));
  });

  it('asks for a prompt document when none is active', async () => {
    world.setActive(fakeDocument('file:///ws/a.py', 'python'));
    const before = world.messages.length;
    assert.equal(await world.commands.get('promptLsp.evaluateActive')!(), undefined);
    assert.deepEqual(world.messages.slice(before), [
      { level: 'warning', text: 'Open a .prompt file first.', items: [] },
    ]);
  });
});

describe('extension without a server', () => {
  const ctx = context();

  after(async () => {
    await extension.deactivate();
    dispose(ctx);
  });

  it('says how to install it and opens the setting', async () => {
    world.messages = [];
    world.executed = [];
    world.errorAnswers = ['Open Settings'];
    world.settings = { 'promptLsp.serverCommand': ['/nonexistent/bin/prompt-lsp'] };
    await extension.activate(ctx);
    await until(() => world.executed.length > 0, 'the settings command');
    assert.deepEqual(world.messages, [
      {
        level: 'error',
        text:
          'prompt-lsp server not found. Install it with `pip install prompt-lsp` (in the workspace\'s .venv, ' +
          'or the interpreter selected in the Python extension) or set promptLsp.serverCommand. ' +
          'Tried: /nonexistent/bin/prompt-lsp.',
        items: ['Open Settings'],
      },
    ]);
    assert.deepEqual(world.executed, [
      { command: 'workbench.action.openSettings', args: ['promptLsp.serverCommand'] },
    ]);
  });
});

describe("extension using the Python extension's interpreter", () => {
  const ctx = context();
  const envDir = fs.mkdtempSync(path.join(os.tmpdir(), 'prompt-lsp-env-'));

  after(async () => {
    await extension.deactivate();
    dispose(ctx);
    world.extensions = {};
    fs.rmSync(envDir, { recursive: true, force: true });
  });

  it('starts the prompt-lsp beside the selected interpreter', async () => {
    // an environment holding a python and the server's script (here: the fake server)
    const python = path.join(envDir, 'python');
    fs.writeFileSync(python, '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    const script = path.join(envDir, 'prompt-lsp');
    fs.writeFileSync(script, `#!/bin/sh\nexec "${process.execPath}" "${fakeServer}" "$@"\n`, { mode: 0o755 });
    world.extensions = {
      'ms-python.python': {
        isActive: true,
        exports: {
          environments: {
            getActiveEnvironmentPath: () => ({ id: python, path: python }),
            resolveEnvironment: async () => ({ executable: { uri: { fsPath: python } } }),
          },
        },
      },
    };
    world.messages = [];
    world.output = [];
    world.settings = {};
    await extension.activate(ctx);
    await until(() => world.output.join('').includes('Starting'), 'the server start');
    assert.match(world.output.join(''), new RegExp(`Starting ${script} serve`));
    assert.deepEqual(world.messages, []);
  });
});

describe('extension with a server that exits at once', () => {
  const ctx = context();

  after(async () => {
    await extension.deactivate();
    dispose(ctx);
  });

  it('reports the failure once, with its own message, and does not restart', async () => {
    // vscode-languageclient 9 itself leaves `void this.stop()` promises rejected when
    // initialization fails ("Client is not running and can't be stopped"); VS Code only logs
    // those. Collect them here instead of letting the test runner fail the test.
    const saved = process.listeners('unhandledRejection');
    const rejections: string[] = [];
    process.removeAllListeners('unhandledRejection');
    process.on('unhandledRejection', (reason) => rejections.push(String((reason as Error)?.message ?? reason)));
    try {
      world.messages = [];
      world.errorAnswers = [];
      world.output = [];
      world.settings = { 'promptLsp.serverCommand': [process.execPath, '-e', 'process.exit(3)'] };
      await extension.activate(ctx);
      await until(() => world.messages.length > 0, 'an error notification');
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(world.messages.length, 1, JSON.stringify(world.messages));
      assert.match(world.messages[0]!.text, /^prompt-lsp server failed to start/);
      assert.deepEqual(world.messages[0]!.items, ['Show Output', 'Open Settings']);
      const starts = world.output.join('').match(/Starting /g) ?? [];
      assert.equal(starts.length, 1, world.output.join(''));
      for (const r of rejections) {
        assert.match(r, /can't be stopped|connection got disposed/);
      }
    } finally {
      process.removeAllListeners('unhandledRejection');
      for (const l of saved) {
        process.on('unhandledRejection', l);
      }
    }
  });
});

describe('extension with the default serverCommand', { skip: process.platform === 'win32' }, () => {
  let dir: string;
  let savedPath: string | undefined;
  const script = (body: string) => `#!/bin/sh\n${body}\n`;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prompt-lsp-vscode-'));
    savedPath = process.env.PATH;
    process.env.PATH = dir; // nothing else: no real prompt-lsp or python can interfere
  });

  after(() => {
    process.env.PATH = savedPath;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function evaluateWith(files: Record<string, string>): Promise<any> {
    for (const name of fs.readdirSync(dir)) {
      fs.rmSync(path.join(dir, name));
    }
    for (const [name, body] of Object.entries(files)) {
      fs.writeFileSync(path.join(dir, name), script(body), { mode: 0o755 });
    }
    const ctx = context();
    world.messages = [];
    world.settings = {};
    try {
      await extension.activate(ctx);
      world.setActive(fakeDocument('file:///ws/a.prompt', 'prompt'));
      const result = await world.commands.get('promptLsp.evaluateActive')!();
      assert.deepEqual(world.messages, []);
      return JSON.parse(result as string);
    } finally {
      await extension.deactivate();
      dispose(ctx);
    }
  }

  it('runs `prompt-lsp serve` from PATH', async () => {
    const echo = await evaluateWith({
      'prompt-lsp': `exec "${process.execPath}" "${fakeServer}" "$@"`,
    });
    assert.equal(echo.command, 'prompt-lsp.evaluate');
    assert.deepEqual(echo.argv, ['serve']);
  });

  it('falls back to `python3 -m prompt_lsp serve`', async () => {
    // A fake python3: `-c <probe>` succeeds, `-m prompt_lsp ...` starts the fake server.
    const echo = await evaluateWith({
      python3: [
        'if [ "$1" = "-c" ]; then exit 0; fi',
        'if [ "$1" = "-m" ] && [ "$2" = "prompt_lsp" ]; then shift 2; exec "' +
          process.execPath + '" "' + fakeServer + '" "$@"; fi',
        'exit 2',
      ].join('\n'),
    });
    assert.deepEqual(echo.argv, ['serve']);
  });
});
