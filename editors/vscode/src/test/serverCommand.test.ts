import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  expandVariables,
  findOnPath,
  ResolveDeps,
  resolveServerCommand,
  withServe,
} from '../serverCommand';

function deps(opts: {
  executables?: string[];
  pythonsWithModule?: string[];
  path?: string;
  platform?: NodeJS.Platform;
  env?: NodeJS.ProcessEnv;
}): ResolveDeps & { pythonChecks: string[] } {
  const executables = new Set(opts.executables ?? []);
  const pythonsWithModule = new Set(opts.pythonsWithModule ?? []);
  const pythonChecks: string[] = [];
  return {
    platform: opts.platform ?? 'linux',
    env: opts.env ?? { PATH: opts.path ?? '/usr/local/bin:/usr/bin' },
    isExecutable: async (file) => executables.has(file),
    hasPythonModule: async (python, module) => {
      pythonChecks.push(`${python} ${module}`);
      return pythonsWithModule.has(python);
    },
    pythonChecks,
  };
}

describe('withServe', () => {
  it('appends serve', () => {
    assert.deepEqual(withServe([]), ['serve']);
    assert.deepEqual(withServe(['run', 'prompt-lsp']), ['run', 'prompt-lsp', 'serve']);
  });
  it('does not repeat serve', () => {
    assert.deepEqual(withServe(['serve', '--log', 'debug']), ['serve', '--log', 'debug']);
  });
});

describe('expandVariables', () => {
  const subs = { workspaceFolder: '/ws', userHome: '/home/u' };
  it('expands workspaceFolder, userHome and ~', () => {
    assert.equal(expandVariables('${workspaceFolder}/.venv/bin/prompt-lsp', subs), '/ws/.venv/bin/prompt-lsp');
    assert.equal(expandVariables('${userHome}/bin/x', subs), '/home/u/bin/x');
    assert.equal(expandVariables('~/bin/x', subs), '/home/u/bin/x');
    assert.equal(expandVariables('~', subs), '/home/u');
  });
  it('leaves other text alone', () => {
    assert.equal(expandVariables('a~b', subs), 'a~b');
    assert.equal(expandVariables('${workspaceFolder}', {}), '${workspaceFolder}');
  });
});

describe('findOnPath', () => {
  it('returns the first executable match in PATH order', async () => {
    const d = deps({ executables: ['/usr/bin/prompt-lsp', '/usr/local/bin/prompt-lsp'] });
    assert.equal(await findOnPath('prompt-lsp', d), '/usr/local/bin/prompt-lsp');
  });
  it('returns undefined when absent', async () => {
    assert.equal(await findOnPath('prompt-lsp', deps({})), undefined);
  });
  it('uses PATHEXT and ; on Windows', async () => {
    const d = deps({
      platform: 'win32',
      env: { Path: 'C:\\Python\\Scripts;C:\\Windows', PATHEXT: '.COM;.EXE;.CMD' },
      executables: ['C:\\Python\\Scripts\\prompt-lsp.exe'],
    });
    assert.equal(await findOnPath('prompt-lsp', d), 'C:\\Python\\Scripts\\prompt-lsp.exe');
  });
});

describe('resolveServerCommand', () => {
  it('prefers prompt-lsp on PATH', async () => {
    const d = deps({ executables: ['/usr/bin/prompt-lsp', '/usr/bin/python3'], pythonsWithModule: ['/usr/bin/python3'] });
    assert.deepEqual(await resolveServerCommand([], d), {
      ok: true,
      command: '/usr/bin/prompt-lsp',
      args: ['serve'],
      source: 'path',
    });
    assert.deepEqual(d.pythonChecks, []);
  });

  it('falls back to python3 -m prompt_lsp serve', async () => {
    const d = deps({ executables: ['/usr/bin/python3'], pythonsWithModule: ['/usr/bin/python3'] });
    assert.deepEqual(await resolveServerCommand([], d), {
      ok: true,
      command: '/usr/bin/python3',
      args: ['-m', 'prompt_lsp', 'serve'],
      source: 'python',
    });
  });

  it('falls back to python when python3 lacks the module', async () => {
    const d = deps({
      executables: ['/usr/bin/python3', '/usr/bin/python'],
      pythonsWithModule: ['/usr/bin/python'],
    });
    const r = await resolveServerCommand([], d);
    assert.deepEqual(r, {
      ok: true,
      command: '/usr/bin/python',
      args: ['-m', 'prompt_lsp', 'serve'],
      source: 'python',
    });
    assert.deepEqual(d.pythonChecks, ['/usr/bin/python3 prompt_lsp', '/usr/bin/python prompt_lsp']);
  });

  it('reports what it tried when nothing works', async () => {
    const d = deps({ executables: ['/usr/bin/python3'] });
    assert.deepEqual(await resolveServerCommand([], d), {
      ok: false,
      tried: [
        'prompt-lsp (not on PATH)',
        '/usr/bin/python3 -m prompt_lsp (not installed there)',
        'python (not on PATH)',
      ],
    });
  });

  it("prefers the workspace's .venv over PATH: its prompt-lsp, else its python", async () => {
    const subs = { workspaceFolder: '/ws', trusted: true };
    const withScript = deps({ executables: ['/ws/.venv/bin/prompt-lsp', '/usr/bin/prompt-lsp'] });
    assert.deepEqual(await resolveServerCommand([], withScript, subs), {
      ok: true,
      command: '/ws/.venv/bin/prompt-lsp',
      args: ['serve'],
      source: 'venv',
    });
    const withPython = deps({
      executables: ['/ws/venv/bin/python', '/usr/bin/prompt-lsp'],
      pythonsWithModule: ['/ws/venv/bin/python'],
    });
    assert.deepEqual(await resolveServerCommand([], withPython, subs), {
      ok: true,
      command: '/ws/venv/bin/python',
      args: ['-m', 'prompt_lsp', 'serve'],
      source: 'venv',
    });
  });

  it('skips the workspace .venv when the workspace is not trusted', async () => {
    const d = deps({ executables: ['/ws/.venv/bin/prompt-lsp', '/usr/bin/prompt-lsp'] });
    const r = await resolveServerCommand([], d, { workspaceFolder: '/ws', trusted: false });
    assert.equal(r.ok && r.command, '/usr/bin/prompt-lsp');
  });

  it("uses the Python extension's interpreter before PATH", async () => {
    const d = deps({
      executables: ['/opt/env/bin/python', '/usr/bin/prompt-lsp'],
      pythonsWithModule: ['/opt/env/bin/python'],
    });
    d.selectedInterpreter = async () => '/opt/env/bin/python';
    assert.deepEqual(await resolveServerCommand([], d, { workspaceFolder: '/ws', trusted: true }), {
      ok: true,
      command: '/opt/env/bin/python',
      args: ['-m', 'prompt_lsp', 'serve'],
      source: 'interpreter',
    });
  });

  it('says exactly what was tried, in order, when nothing works', async () => {
    const d = deps({ executables: ['/ws/.venv/bin/python', '/opt/env/bin/python'] });
    d.selectedInterpreter = async () => '/opt/env/bin/python';
    assert.deepEqual(await resolveServerCommand([], d, { workspaceFolder: '/ws', trusted: true }), {
      ok: false,
      tried: [
        'workspace .venv: /ws/.venv/bin/python -m prompt_lsp (not installed there)',
        'workspace venv: /ws/venv/bin/python (missing)',
        "the Python extension's interpreter: /opt/env/bin/python -m prompt_lsp (not installed there)",
        'prompt-lsp (not on PATH)',
        'python3 (not on PATH)',
        'python (not on PATH)',
      ],
    });
  });

  it('uses the setting, appending serve', async () => {
    const d = deps({ executables: ['/usr/bin/uv'] });
    assert.deepEqual(await resolveServerCommand(['uv', 'run', 'prompt-lsp'], d), {
      ok: true,
      command: '/usr/bin/uv',
      args: ['run', 'prompt-lsp', 'serve'],
      source: 'setting',
    });
  });

  it('expands ${workspaceFolder} and resolves relative paths against it', async () => {
    const d = deps({ executables: ['/ws/.venv/bin/prompt-lsp'] });
    const subs = { workspaceFolder: '/ws', userHome: '/home/u' };
    const expected = { ok: true, command: '/ws/.venv/bin/prompt-lsp', args: ['serve'], source: 'setting' };
    assert.deepEqual(await resolveServerCommand(['${workspaceFolder}/.venv/bin/prompt-lsp'], d, subs), expected);
    assert.deepEqual(await resolveServerCommand(['.venv/bin/prompt-lsp', 'serve'], d, subs), expected);
  });

  it('does not fall back when the configured command is missing', async () => {
    const d = deps({ executables: ['/usr/bin/prompt-lsp'] });
    assert.deepEqual(await resolveServerCommand(['/opt/missing/prompt-lsp'], d), {
      ok: false,
      tried: ['/opt/missing/prompt-lsp'],
    });
    assert.deepEqual(await resolveServerCommand(['nope'], d), { ok: false, tried: ['nope (on PATH)'] });
  });

  it('ignores blank entries in the setting', async () => {
    const d = deps({ executables: ['/usr/bin/prompt-lsp'] });
    const r = await resolveServerCommand(['', '  '.trim()], d);
    assert.equal(r.ok && r.source, 'path');
  });
});
