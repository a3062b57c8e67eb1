/**
 * Which command starts the language server.
 *
 * - `promptLsp.serverCommand` set: that executable and its leading arguments, plus `serve` unless
 *   the list already holds it. `${workspaceFolder}`, `${userHome}` and a leading `~` are expanded;
 *   a bare name is looked up on PATH.
 * - Otherwise: `prompt-lsp serve` from PATH, else `python3 -m prompt_lsp serve`, else
 *   `python -m prompt_lsp serve` (each Python only if it can import `prompt_lsp`).
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
}

export interface Substitutions {
  workspaceFolder?: string;
  userHome?: string;
}

export type Resolution =
  | { ok: true; command: string; args: string[]; source: 'setting' | 'path' | 'python' }
  | { ok: false; tried: string[] };

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
  const onPath = await findOnPath(SERVER_EXECUTABLE, deps);
  if (onPath !== undefined) {
    return { ok: true, command: onPath, args: [SERVE_ARG], source: 'path' };
  }
  tried.push(`${SERVER_EXECUTABLE} (on PATH)`);

  const pythons = deps.platform === 'win32' ? ['python', 'python3'] : ['python3', 'python'];
  for (const python of pythons) {
    const interpreter = await findOnPath(python, deps);
    if (interpreter !== undefined && (await deps.hasPythonModule(interpreter, PYTHON_MODULE))) {
      return {
        ok: true,
        command: interpreter,
        args: ['-m', PYTHON_MODULE, SERVE_ARG],
        source: 'python',
      };
    }
    tried.push(`${python} -m ${PYTHON_MODULE}`);
  }
  return { ok: false, tried };
}
