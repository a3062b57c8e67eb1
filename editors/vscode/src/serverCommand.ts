/**
 * Which command starts the language server.
 *
 * - `promptLsp.serverCommand` set: that executable and its leading arguments, plus `serve` unless
 *   the list already holds it. `${workspaceFolder}`, `${userHome}` and a leading `~` are expanded;
 *   a bare name is looked up on PATH.
 * - Otherwise, the way Python users expect, first found wins:
 *   1. the workspace's virtual environment, `.venv` then `venv` (only in a trusted workspace):
 *      its `prompt-lsp`, else its Python with `-m prompt_lsp`;
 *   2. the interpreter selected in the Python extension (when installed), with `-m prompt_lsp`,
 *      or the `prompt-lsp` beside it;
 *   3. `prompt-lsp` on PATH, else `python3`/`python -m prompt_lsp` from PATH.
 *   A Python counts only if it can import `prompt_lsp`. When nothing works, `tried` lists every
 *   candidate and why it was passed over.
 *
 * Pure apart from the injected `ResolveDeps`, so the unit tests run without VS Code.
 */
import * as path from 'path';

export const SERVE_ARG = 'serve';
export const SERVER_EXECUTABLE = 'prompt-lsp';
export const PYTHON_MODULE = 'prompt_lsp';

export interface ResolveDeps {
  platform: NodeJS.Platform;
  env: NodeJS.ProcessEnv;
  /** True when `file` exists and may be executed. */
  isExecutable(file: string): Promise<boolean>;
  /** True when `python` can import `module` (run from the server's working directory). */
  hasPythonModule(python: string, module: string): Promise<boolean>;
  /** The interpreter selected in the Python extension, if it is installed and has one. */
  selectedInterpreter?(): Promise<string | undefined>;
}

export interface Substitutions {
  workspaceFolder?: string;
  userHome?: string;
  /** The workspace is trusted: its own virtual environment may be run. */
  trusted?: boolean;
}

export type Source = 'setting' | 'venv' | 'interpreter' | 'path' | 'python';

export type Resolution =
  | { ok: true; command: string; args: string[]; source: Source }
  | { ok: false; tried: string[] };

/** Virtual environment folders looked for in the workspace, in order. */
export const VENV_FOLDERS = ['.venv', 'venv'];

function pathApi(platform: NodeJS.Platform): path.PlatformPath {
  return platform === 'win32' ? path.win32 : path.posix;
}

/** `args` with `serve` appended, unless it is already there. */
export function withServe(args: readonly string[]): string[] {
  return args.includes(SERVE_ARG) ? [...args] : [...args, SERVE_ARG];
}

/** Expands `${workspaceFolder}`, `${userHome}` and a leading `~/` in one setting value. */
export function expandVariables(value: string, subs: Substitutions): string {
  let out = value;
  if (subs.userHome !== undefined) {
    if (out === '~') {
      out = subs.userHome;
    } else if (out.startsWith('~/') || out.startsWith('~\\')) {
      out = subs.userHome + out.slice(1);
    }
    out = out.split('${userHome}').join(subs.userHome);
  }
  if (subs.workspaceFolder !== undefined) {
    out = out.split('${workspaceFolder}').join(subs.workspaceFolder);
  }
  return out;
}

function pathEntries(deps: ResolveDeps): string[] {
  const api = pathApi(deps.platform);
  let value = deps.env.PATH;
  if (value === undefined && deps.platform === 'win32') {
    const key = Object.keys(deps.env).find((k) => k.toUpperCase() === 'PATH');
    value = key === undefined ? undefined : deps.env[key];
  }
  return (value ?? '').split(api.delimiter).filter((entry) => entry !== '');
}

function executableNames(name: string, deps: ResolveDeps): string[] {
  if (deps.platform !== 'win32') {
    return [name];
  }
  const exts = (deps.env.PATHEXT ?? '.COM;.EXE;.BAT;.CMD')
    .split(';')
    .filter((ext) => ext !== '')
    .map((ext) => ext.toLowerCase());
  const hasExt = exts.includes(path.win32.extname(name).toLowerCase());
  return hasExt ? [name] : exts.map((ext) => name + ext);
}

/** The first `name` on PATH that is executable, as a full path. */
export async function findOnPath(name: string, deps: ResolveDeps): Promise<string | undefined> {
  const api = pathApi(deps.platform);
  for (const dir of pathEntries(deps)) {
    for (const candidate of executableNames(name, deps)) {
      const full = api.join(dir, candidate);
      if (await deps.isExecutable(full)) {
        return full;
      }
    }
  }
  return undefined;
}

function isPathLike(command: string, platform: NodeJS.Platform): boolean {
  return command.includes('/') || (platform === 'win32' && command.includes('\\'));
}

/** Finds the command that starts the server, or says what was tried. */
export async function resolveServerCommand(
  setting: readonly string[],
  deps: ResolveDeps,
  subs: Substitutions = {},
): Promise<Resolution> {
  const configured = setting.map((part) => expandVariables(part, subs)).filter((p) => p !== '');
  if (configured.length > 0) {
    const [command, ...rest] = configured as [string, ...string[]];
    if (isPathLike(command, deps.platform)) {
      const api = pathApi(deps.platform);
      const full =
        api.isAbsolute(command) || subs.workspaceFolder === undefined
          ? command
          : api.resolve(subs.workspaceFolder, command);
      return (await deps.isExecutable(full))
        ? { ok: true, command: full, args: withServe(rest), source: 'setting' }
        : { ok: false, tried: [full] };
    }
    const found = await findOnPath(command, deps);
    return found !== undefined
      ? { ok: true, command: found, args: withServe(rest), source: 'setting' }
      : { ok: false, tried: [`${command} (on PATH)`] };
  }

  const tried: string[] = [];
  const api = pathApi(deps.platform);
  const moduleArgs = ['-m', PYTHON_MODULE, SERVE_ARG];

  /** The environment's `prompt-lsp`, else its Python if that imports the module. */
  const fromEnvironment = async (
    binDir: string,
    python: string,
    source: Source,
    label: string,
  ): Promise<Resolution | undefined> => {
    for (const name of executableNames(SERVER_EXECUTABLE, deps)) {
      const server = api.join(binDir, name);
      if (await deps.isExecutable(server)) {
        return { ok: true, command: server, args: [SERVE_ARG], source };
      }
    }
    if (!(await deps.isExecutable(python))) {
      tried.push(`${label}: ${python} (missing)`);
      return undefined;
    }
    if (await deps.hasPythonModule(python, PYTHON_MODULE)) {
      return { ok: true, command: python, args: moduleArgs, source };
    }
    tried.push(`${label}: ${python} -m ${PYTHON_MODULE} (not installed there)`);
    return undefined;
  };

  if (subs.workspaceFolder !== undefined) {
    for (const folder of VENV_FOLDERS) {
      const venv = api.join(subs.workspaceFolder, folder);
      const binDir = api.join(venv, deps.platform === 'win32' ? 'Scripts' : 'bin');
      const python = api.join(binDir, deps.platform === 'win32' ? 'python.exe' : 'python');
      if (subs.trusted === false) {
        tried.push(`workspace ${folder} (skipped: the workspace is not trusted)`);
        continue;
      }
      const found = await fromEnvironment(binDir, python, 'venv', `workspace ${folder}`);
      if (found !== undefined) {
        return found;
      }
    }
  }

  if (deps.selectedInterpreter !== undefined) {
    const interpreter = await deps.selectedInterpreter();
    if (interpreter === undefined) {
      tried.push('the Python extension\'s interpreter (none selected or not installed)');
    } else {
      const found = await fromEnvironment(
        api.dirname(interpreter),
        interpreter,
        'interpreter',
        'the Python extension\'s interpreter',
      );
      if (found !== undefined) {
        return found;
      }
    }
  }

  const onPath = await findOnPath(SERVER_EXECUTABLE, deps);
  if (onPath !== undefined) {
    return { ok: true, command: onPath, args: [SERVE_ARG], source: 'path' };
  }
  tried.push(`${SERVER_EXECUTABLE} (not on PATH)`);

  const pythons = deps.platform === 'win32' ? ['python', 'python3'] : ['python3', 'python'];
  for (const python of pythons) {
    const interpreter = await findOnPath(python, deps);
    if (interpreter !== undefined && (await deps.hasPythonModule(interpreter, PYTHON_MODULE))) {
      return { ok: true, command: interpreter, args: moduleArgs, source: 'python' };
    }
    tried.push(
      interpreter === undefined
        ? `${python} (not on PATH)`
        : `${interpreter} -m ${PYTHON_MODULE} (not installed there)`,
    );
  }
  return { ok: false, tried };
}
