/**
 * VS Code client for prompt-lsp: starts `prompt-lsp serve` over stdio for `.prompt` / `.prompty`
 * documents, adds palette commands that run the server's commands on the active document, and shows
 * the active prompt's headline score in the status bar.
 */
import * as cp from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as vscode from 'vscode';
import {
  CloseAction,
  ErrorHandler,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
} from 'vscode-languageclient/node';

import { SCORE_NOTIFICATION, ScoreBoard, statusFor } from './scores';
import { ResolveDeps, resolveServerCommand } from './serverCommand';
import { PromptLspSettings, readSettings, SECTION } from './settings';

export const LANGUAGE_ID = 'prompt';
const CLIENT_ID = 'promptLsp';
const CLIENT_NAME = 'Prompt LSP';
/** Files the server reads examples from; it is told when they change. */
export const EXAMPLES_GLOB = '**/*.{jsonl,json,csv,yaml,yml}';
/** Examples files by naming convention: the server shows per-example scores in them. */
export const EXAMPLES_FILES_GLOB = '**/*.examples.{jsonl,json,csv,yaml,yml}';
/** Only our own extensions: VS Code itself has a `prompt` language for Copilot's `*.prompt.md`. */
export const PROMPT_FILES_GLOB = '**/*.{prompt,prompty}';

export const NOT_FOUND_MESSAGE =
  'prompt-lsp server not found. Install it with `pip install prompt-lsp` (in the workspace\'s .venv, ' +
  'or the interpreter selected in the Python extension) or set promptLsp.serverCommand.';

/** The not-found notification: what to do, then every place that was looked at. */
export function notFoundMessage(tried: readonly string[]): string {
  return tried.length === 0 ? NOT_FOUND_MESSAGE : `${NOT_FOUND_MESSAGE} Tried: ${tried.join('; ')}.`;
}

/** The interpreter the Python extension (ms-python.python) has selected for `resource`. */
async function pythonExtensionInterpreter(resource: vscode.Uri | undefined): Promise<string | undefined> {
  const extension = vscode.extensions.getExtension('ms-python.python');
  if (extension === undefined) {
    return undefined;
  }
  try {
    const api: any = extension.isActive ? extension.exports : await extension.activate();
    const environments = api?.environments;
    if (environments?.getActiveEnvironmentPath !== undefined) {
      const active = environments.getActiveEnvironmentPath(resource);
      const resolved = await environments.resolveEnvironment?.(active);
      const executable: string | undefined = resolved?.executable?.uri?.fsPath ?? active?.path;
      if (executable) {
        return executable;
      }
    }
    const details = api?.settings?.getExecutionDetails?.(resource);
    const command: unknown = details?.execCommand?.[0];
    return typeof command === 'string' && command !== '' ? command : undefined;
  } catch {
    return undefined;
  }
}
const OPEN_SETTINGS = 'Open Settings';
const SHOW_OUTPUT = 'Show Output';

/** Server-side commands (registered by vscode-languageclient from executeCommandProvider). */
export const SERVER_COMMANDS = {
  evaluate: 'prompt-lsp.evaluate',
  cancelEvaluation: 'prompt-lsp.cancelEvaluation',
  showRendered: 'prompt-lsp.showRendered',
  compareWithPrevious: 'prompt-lsp.compareWithPrevious',
} as const;

/** Palette commands (contributed in package.json) that run a server command on a document. */
export const PALETTE_COMMANDS: ReadonlyArray<readonly [string, string]> = [
  ['promptLsp.evaluateActive', SERVER_COMMANDS.evaluate],
  ['promptLsp.cancelEvaluationActive', SERVER_COMMANDS.cancelEvaluation],
  ['promptLsp.showRenderedActive', SERVER_COMMANDS.showRendered],
  ['promptLsp.compareWithPreviousActive', SERVER_COMMANDS.compareWithPrevious],
];
export const RESTART_COMMAND = 'promptLsp.restartServer';
const COMPARE_COMMAND = 'promptLsp.compareWithPreviousActive';

/**
 * A LanguageClient whose start-up errors are only logged: the controller shows its own
 * notification (with the fix) instead of the generic "couldn't create connection to server".
 */
class PromptLanguageClient extends LanguageClient {
  quiet = false;
  /** The first error reported while `quiet`. */
  startError: unknown;

  override error(message: string, data?: unknown, showNotification?: boolean | 'force'): void {
    if (this.quiet && this.startError === undefined) {
      this.startError = data ?? message;
    }
    super.error(message, data, this.quiet ? false : showNotification);
  }
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return typeof error === 'string' ? error : JSON.stringify(error);
}

function isSpawnFailure(error: unknown): boolean {
  const text = errorText(error);
  return /ENOENT|EACCES|Launching server using command/.test(text);
}

const EXITED_DURING_START = 'the server exited during start-up (its log is in the Prompt LSP output)';

/** A start-up error as the user should read it. */
function describeStartError(error: unknown): string {
  const text = errorText(error);
  return /connection got disposed|connection is closed|connection got closed/i.test(text)
    ? EXITED_DURING_START
    : text;
}

function normalizeUri(uri: string): string {
  return vscode.Uri.parse(uri, true).toString();
}

class PromptLspController implements vscode.Disposable {
  private client: PromptLanguageClient | undefined;
  private pending: Promise<void> = Promise.resolve();
  private readonly scores = new ScoreBoard(normalizeUri);
  private readonly status: vscode.StatusBarItem;
  private readonly watcher: vscode.FileSystemWatcher;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(private readonly output: vscode.OutputChannel) {
    this.status = vscode.window.createStatusBarItem(
      'promptLsp.score',
      vscode.StatusBarAlignment.Right,
      100,
    );
    this.status.name = 'Prompt score';
    this.watcher = vscode.workspace.createFileSystemWatcher(EXAMPLES_GLOB);
    this.subscriptions.push(
      this.status,
      this.watcher,
      vscode.window.onDidChangeActiveTextEditor(() => this.refreshStatus()),
      vscode.workspace.onDidOpenTextDocument(() => this.refreshStatus()),
    );
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  /** Starts the client (serialized with other start/stop calls). */
  start(): Promise<void> {
    this.pending = this.pending.then(() => this.doStart()).catch(() => undefined);
    return this.pending;
  }

  restart(): Promise<void> {
    this.pending = this.pending
      .then(() => this.doStop())
      .then(() => this.doStart())
      .catch(() => undefined);
    return this.pending;
  }

  private serverCwd(): string {
    const folder = vscode.workspace.workspaceFolders?.[0];
    // In an untrusted workspace `python -m prompt_lsp` must not import a module from the workspace.
    return folder !== undefined && folder.uri.scheme === 'file' && vscode.workspace.isTrusted
      ? folder.uri.fsPath
      : os.homedir();
  }

  private resolveDeps(cwd: string): ResolveDeps {
    const folder = vscode.workspace.workspaceFolders?.[0];
    return {
      selectedInterpreter: () => pythonExtensionInterpreter(folder?.uri),
      platform: process.platform,
      env: process.env,
      isExecutable: async (file) => {
        try {
          const stat = await fs.promises.stat(file);
          if (!stat.isFile()) {
            return false;
          }
          await fs.promises.access(file, fs.constants.X_OK);
          return true;
        } catch {
          return false;
        }
      },
      hasPythonModule: (python, module) =>
        new Promise((resolve) => {
          const code =
            'import importlib.util, sys; ' +
            `sys.exit(0 if importlib.util.find_spec(${JSON.stringify(module)}) else 1)`;
          cp.execFile(python, ['-c', code], { cwd, timeout: 15000, windowsHide: true }, (err) =>
            resolve(err === null),
          );
        }),
    };
  }

  private currentSettings(): PromptLspSettings {
    const config = vscode.workspace.getConfiguration(SECTION);
    return readSettings((key) => config.get(key));
  }

  private async doStart(): Promise<void> {
    if (this.client !== undefined) {
      return;
    }
    const settings = this.currentSettings();
    const cwd = this.serverCwd();
    const folder = vscode.workspace.workspaceFolders?.[0];
    const resolution = await resolveServerCommand(settings.serverCommand, this.resolveDeps(cwd), {
      workspaceFolder: folder?.uri.scheme === 'file' ? folder.uri.fsPath : undefined,
      userHome: os.homedir(),
      trusted: vscode.workspace.isTrusted,
    });
    if (!resolution.ok) {
      this.output.appendLine(`prompt-lsp server not found; tried: ${resolution.tried.join('; ')}`);
      void this.showNotFound(resolution.tried);
      return;
    }
    this.output.appendLine(
      `Starting ${[resolution.command, ...resolution.args].join(' ')} (cwd ${cwd})`,
    );

    // A server that dies while starting is not restarted: the user gets one notification (below).
    let running = false;
    let fallbackHandler: ErrorHandler | undefined;
    const errorHandler: ErrorHandler = {
      error: (error, message, count) => fallbackHandler!.error(error, message, count),
      closed: () =>
        running && fallbackHandler !== undefined
          ? fallbackHandler.closed()
          : { action: CloseAction.DoNotRestart, handled: true },
    };

    // No `transport`: plain stdio, and vscode-languageclient adds no `--stdio` argument.
    const serverOptions: ServerOptions = {
      command: resolution.command,
      args: resolution.args,
      options: { cwd, env: { ...process.env, PYTHONUNBUFFERED: '1' } },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: 'file', language: LANGUAGE_ID, pattern: PROMPT_FILES_GLOB },
        { scheme: 'untitled', language: LANGUAGE_ID },
        // examples files: per-example score lenses and evaluation diagnostics
        { scheme: 'file', pattern: EXAMPLES_FILES_GLOB },
      ],
      // codeLens/scoreNotification: this client shows lenses and the score in its status bar
      initializationOptions: { ...settings, codeLens: true, scoreNotification: true },
      synchronize: {
        configurationSection: SECTION,
        fileEvents: this.watcher,
      },
      outputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationFailedHandler: (error) => {
        this.output.appendLine(`Server initialization failed: ${errorText(error)}`);
        return false;
      },
      errorHandler,
    };

    const client = new PromptLanguageClient(CLIENT_ID, CLIENT_NAME, serverOptions, clientOptions);
    // Once running, a crashed server is restarted as usual (at most 4 times in 3 minutes).
    fallbackHandler = client.createDefaultErrorHandler(4);
    client.onNotification(SCORE_NOTIFICATION, (params: unknown) => {
      if (this.scores.update(params) !== undefined) {
        this.refreshStatus();
      }
    });
    client.quiet = true;
    try {
      await client.start();
      // start() can resolve although the server died during initialization.
      if (!client.isRunning()) {
        throw isSpawnFailure(client.startError) ? client.startError : new Error(EXITED_DURING_START);
      }
      running = true;
      client.quiet = false;
      this.client = client;
    } catch (error) {
      this.output.appendLine(`Could not start the server: ${errorText(error)}`);
      void client.dispose().catch(() => undefined);
      if (isSpawnFailure(error)) {
        void this.showNotFound();
      } else {
        void this.showStartFailure(error);
      }
    }
  }

  private async doStop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) {
      try {
        await client.stop();
      } catch (error) {
        this.output.appendLine(`Stopping the server failed: ${errorText(error)}`);
      }
    }
  }

  private async showNotFound(tried: readonly string[] = []): Promise<void> {
    const choice = await vscode.window.showErrorMessage(notFoundMessage(tried), OPEN_SETTINGS);
    if (choice === OPEN_SETTINGS) {
      await vscode.commands.executeCommand(
        'workbench.action.openSettings',
        `${SECTION}.serverCommand`,
      );
    }
  }

  private async showStartFailure(error: unknown): Promise<void> {
    const choice = await vscode.window.showErrorMessage(
      `prompt-lsp server failed to start: ${describeStartError(error)}`,
      SHOW_OUTPUT,
      OPEN_SETTINGS,
    );
    if (choice === SHOW_OUTPUT) {
      this.output.show(true);
    } else if (choice === OPEN_SETTINGS) {
      await vscode.commands.executeCommand('workbench.action.openSettings', SECTION);
    }
  }

  // ---- commands -------------------------------------------------------------------------------

  /** Runs a server command on `target` (a palette/menu argument) or the active prompt document. */
  async runServerCommand(command: string, target?: unknown): Promise<unknown> {
    const uri = target instanceof vscode.Uri ? target : this.activePromptUri();
    if (uri === undefined) {
      void vscode.window.showWarningMessage('Open a .prompt file first.');
      return undefined;
    }
    await this.pending;
    if (this.client === undefined) {
      await this.start();
    }
    const client = this.client;
    if (client === undefined) {
      return undefined; // start() has already told the user why
    }
    if (!client.isRunning()) {
      void vscode.window.showErrorMessage(
        'The prompt-lsp server is not running. Run "Prompt: Restart Language Server" ' +
          '(its last error is in the Prompt LSP output).',
      );
      return undefined;
    }
    try {
      const result: unknown = await client.sendRequest(ExecuteCommandRequest.type, {
        command,
        arguments: [{ uri: uri.toString() }],
      });
      await this.showResult(result);
      return result;
    } catch (error) {
      void vscode.window.showErrorMessage(`${command} failed: ${errorText(error)}`);
      return undefined;
    }
  }

  /** A command that returns text (e.g. the rendered prompt) gets it shown in a new editor. */
  private async showResult(result: unknown): Promise<void> {
    if (typeof result === 'string' && result.trim() !== '') {
      const doc = await vscode.workspace.openTextDocument({
        content: result,
        language: 'plaintext',
      });
      await vscode.window.showTextDocument(doc, {
        viewColumn: vscode.ViewColumn.Beside,
        preview: true,
      });
    }
  }

  private activePromptUri(): vscode.Uri | undefined {
    const doc = vscode.window.activeTextEditor?.document;
    return doc !== undefined && doc.languageId === LANGUAGE_ID ? doc.uri : undefined;
  }

  // ---- status bar -----------------------------------------------------------------------------

  refreshStatus(): void {
    const doc = vscode.window.activeTextEditor?.document;
    const entry = statusFor(
      this.scores,
      doc === undefined ? undefined : { uri: doc.uri.toString(), languageId: doc.languageId },
      LANGUAGE_ID,
    );
    if (doc === undefined || entry === undefined) {
      this.status.hide();
      return;
    }
    this.status.text = `$(beaker) ${entry.text}`;
    this.status.tooltip =
      entry.tooltip !== ''
        ? entry.tooltip
        : 'Prompt score: click to compare with the previous version';
    this.status.backgroundColor = entry.regressed
      ? new vscode.ThemeColor('statusBarItem.warningBackground')
      : undefined;
    this.status.command = {
      command: COMPARE_COMMAND,
      title: 'Compare with Previous Version',
      arguments: [doc.uri],
    };
    this.status.show();
  }

  dispose(): void {
    for (const d of this.subscriptions) {
      d.dispose();
    }
  }

  stopForDeactivate(): Promise<void> {
    return this.doStop();
  }
}

let controller: PromptLspController | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel(CLIENT_NAME);
  const ctl = new PromptLspController(output);
  controller = ctl;
  context.subscriptions.push(output, ctl);

  for (const [paletteCommand, serverCommand] of PALETTE_COMMANDS) {
    context.subscriptions.push(
      vscode.commands.registerCommand(paletteCommand, (target?: unknown) =>
        ctl.runServerCommand(serverCommand, target),
      ),
    );
  }
  context.subscriptions.push(
    vscode.commands.registerCommand(RESTART_COMMAND, () => ctl.restart()),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(`${SECTION}.serverCommand`)) {
        void ctl.restart();
      }
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => void ctl.restart()),
  );

  ctl.refreshStatus();
  await ctl.start();
}

export async function deactivate(): Promise<void> {
  const ctl = controller;
  controller = undefined;
  if (ctl !== undefined) {
    await ctl.stopForDeactivate();
  }
}
