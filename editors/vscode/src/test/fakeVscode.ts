/**
 * A stand-in for the `vscode` module, enough to activate the bundled extension (and
 * vscode-languageclient inside it) under plain Node and observe what it does: notifications,
 * registered commands, the status bar item, opened documents. Anything not modelled here is an
 * inert "anything" object, so unrelated API use does not crash.
 *
 * Not a VS Code: it only checks the extension's own wiring against a real language server process.
 */
import * as path from 'node:path';

type Listener = (e: any) => unknown;

/** Callable, constructible, every property is again such an object; `then` is undefined. */
function anything(): any {
  const target = function () {
    /* inert */
  };
  return new Proxy(target, {
    get(_t, prop) {
      if (prop === 'then') {
        return undefined;
      }
      if (prop === Symbol.iterator) {
        return function* () {
          /* empty */
        };
      }
      if (prop === Symbol.toPrimitive) {
        return () => 0;
      }
      if (prop === 'dispose') {
        return () => undefined;
      }
      return anything();
    },
    apply: () => anything(),
    construct: () => anything(),
  });
}

export class Disposable {
  constructor(private readonly fn: () => unknown = () => undefined) {}
  static from(...items: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => items.forEach((i) => i?.dispose?.()));
  }
  dispose(): void {
    this.fn();
  }
}

export class EventEmitter<T> {
  private listeners: Listener[] = [];
  event = (listener: Listener, thisArg?: unknown): Disposable => {
    const bound = thisArg === undefined ? listener : listener.bind(thisArg);
    this.listeners.push(bound);
    return new Disposable(() => {
      this.listeners = this.listeners.filter((l) => l !== bound);
    });
  };
  fire(e: T): void {
    for (const l of [...this.listeners]) {
      l(e);
    }
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly authority: string,
    readonly path: string,
    readonly query: string,
    readonly fragment: string,
  ) {}
  static parse(value: string, _strict?: boolean): Uri {
    const m = /^([a-zA-Z][\w+.-]*):(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/.exec(value);
    if (m === null) {
      throw new Error(`bad uri ${value}`);
    }
    return new Uri(m[1]!, m[2] ?? '', decodeURIComponent(m[3] ?? ''), m[4] ?? '', m[5] ?? '');
  }
  static file(fsPath: string): Uri {
    return new Uri('file', '', fsPath, '', '');
  }
  get fsPath(): string {
    return this.path;
  }
  with(change: Partial<{ scheme: string; path: string }>): Uri {
    return new Uri(change.scheme ?? this.scheme, this.authority, change.path ?? this.path, this.query, this.fragment);
  }
  toString(): string {
    const authority = this.scheme === 'file' || this.authority !== '' ? `//${this.authority}` : '';
    const encodedPath = this.path
      .split('/')
      .map((seg) => encodeURIComponent(seg))
      .join('/');
    return `${this.scheme}:${authority}${encodedPath}${this.query ? `?${this.query}` : ''}${this.fragment ? `#${this.fragment}` : ''}`;
  }
  toJSON(): unknown {
    return { scheme: this.scheme, path: this.path };
  }
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export class CancellationTokenSource {
  private readonly emitter = new EventEmitter<void>();
  token = {
    isCancellationRequested: false,
    onCancellationRequested: this.emitter.event,
  };
  cancel(): void {
    this.token.isCancellationRequested = true;
    this.emitter.fire();
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

export class CancellationError extends Error {}

export const StatusBarAlignment = { Left: 1, Right: 2 };
export const ViewColumn = { Active: -1, Beside: -2, One: 1, Two: 2 };
export const ProgressLocation = { SourceControl: 1, Window: 10, Notification: 15 };

export interface FakeDocument {
  uri: Uri;
  languageId: string;
  version: number;
  getText(): string;
  isDirty: boolean;
  isClosed: boolean;
  fileName: string;
  lineCount: number;
  eol: number;
  isUntitled: boolean;
}

export function fakeDocument(uri: string, languageId: string, text = ''): FakeDocument {
  const parsed = Uri.parse(uri);
  return {
    uri: parsed,
    languageId,
    version: 1,
    getText: () => text,
    isDirty: false,
    isClosed: false,
    fileName: parsed.fsPath,
    lineCount: text.split('\n').length,
    eol: 1,
    isUntitled: parsed.scheme === 'untitled',
  };
}

export interface StatusItem {
  id: string;
  text: string;
  tooltip: unknown;
  command: any;
  backgroundColor: unknown;
  name: string;
  visible: boolean;
  show(): void;
  hide(): void;
  dispose(): void;
}

/** Everything the fake records, plus knobs the test turns. */
export class World {
  settings: Record<string, unknown> = {};
  workspaceFolders: { uri: Uri; name: string; index: number }[] = [];
  messages: { level: 'error' | 'warning' | 'info'; text: string; items: string[] }[] = [];
  /** Answers the next error notifications (one per call; undefined = dismissed). */
  errorAnswers: (string | undefined)[] = [];
  executed: { command: string; args: unknown[] }[] = [];
  commands = new Map<string, (...args: any[]) => unknown>();
  statusItems: StatusItem[] = [];
  opened: { content: string | undefined; language: string | undefined }[] = [];
  output: string[] = [];
  /** Installed extensions by id, as `vscode.extensions.getExtension` returns them. */
  extensions: Record<string, unknown> = {};
  activeTextEditor: { document: FakeDocument } | undefined;
  readonly onDidChangeActiveTextEditor = new EventEmitter<unknown>();
  readonly onDidChangeConfiguration = new EventEmitter<{ affectsConfiguration(s: string): boolean }>();

  setActive(doc: FakeDocument | undefined): void {
    this.activeTextEditor = doc === undefined ? undefined : { document: doc };
    this.onDidChangeActiveTextEditor.fire(this.activeTextEditor);
  }

  /** The value at a dotted key, e.g. `promptLsp.serverCommand`, or under a section prefix. */
  lookup(key: string): unknown {
    if (key in this.settings) {
      return this.settings[key];
    }
    const prefix = `${key}.`;
    const nested: Record<string, unknown> = {};
    let found = false;
    for (const [k, v] of Object.entries(this.settings)) {
      if (k.startsWith(prefix)) {
        nested[k.slice(prefix.length)] = v;
        found = true;
      }
    }
    return found ? nested : undefined;
  }
}

function event(): (listener: Listener) => Disposable {
  return new EventEmitter<unknown>().event;
}

/** Builds the module object handed to `require('vscode')`. */
export function createFakeVscode(world: World): any {
  const configuration = (section?: string) => ({
    get: (key: string, fallback?: unknown) => {
      const value = world.lookup(section ? `${section}.${key}` : key);
      return value === undefined ? fallback : value;
    },
    has: (key: string) => world.lookup(section ? `${section}.${key}` : key) !== undefined,
    inspect: () => undefined,
    update: async () => undefined,
  });

  const notify =
    (level: 'error' | 'warning' | 'info') =>
    async (text: string, ...items: unknown[]) => {
      const labels = items.filter((i): i is string => typeof i === 'string');
      world.messages.push({ level, text, items: labels });
      return level === 'error' ? world.errorAnswers.shift() : undefined;
    };

  const window = {
    get activeTextEditor() {
      return world.activeTextEditor;
    },
    visibleTextEditors: [],
    onDidChangeActiveTextEditor: world.onDidChangeActiveTextEditor.event,
    onDidChangeVisibleTextEditors: event(),
    showErrorMessage: notify('error'),
    showWarningMessage: notify('warning'),
    showInformationMessage: notify('info'),
    createOutputChannel: (name: string) => ({
      name,
      append: (s: string) => world.output.push(s),
      appendLine: (s: string) => world.output.push(`${s}\n`),
      replace: () => undefined,
      clear: () => undefined,
      show: () => undefined,
      hide: () => undefined,
      dispose: () => undefined,
    }),
    createStatusBarItem: (id: string) => {
      const item: StatusItem = {
        id,
        text: '',
        tooltip: undefined,
        command: undefined,
        backgroundColor: undefined,
        name: '',
        visible: false,
        show() {
          item.visible = true;
        },
        hide() {
          item.visible = false;
        },
        dispose() {
          item.visible = false;
        },
      };
      world.statusItems.push(item);
      return item;
    },
    showTextDocument: async (doc: unknown) => ({ document: doc }),
    withProgress: async (_opts: unknown, task: (p: unknown, t: unknown) => unknown) =>
      task({ report: () => undefined }, new CancellationTokenSource().token),
    tabGroups: { all: [], onDidChangeTabs: event(), onDidChangeTabGroups: event() },
  };

  const workspace = {
    get workspaceFolders() {
      return world.workspaceFolders;
    },
    get rootPath() {
      return world.workspaceFolders[0]?.uri.fsPath;
    },
    isTrusted: true,
    textDocuments: [] as FakeDocument[],
    notebookDocuments: [],
    getConfiguration: configuration,
    onDidChangeConfiguration: world.onDidChangeConfiguration.event,
    onDidOpenTextDocument: event(),
    onDidCloseTextDocument: event(),
    onDidChangeTextDocument: event(),
    onDidSaveTextDocument: event(),
    onWillSaveTextDocument: event(),
    onDidChangeWorkspaceFolders: event(),
    onDidGrantWorkspaceTrust: event(),
    createFileSystemWatcher: () => ({
      onDidCreate: event(),
      onDidChange: event(),
      onDidDelete: event(),
      dispose: () => undefined,
    }),
    openTextDocument: async (arg: any) => {
      world.opened.push({ content: arg?.content, language: arg?.language });
      return fakeDocument('untitled:Untitled-1', arg?.language ?? 'plaintext', arg?.content ?? '');
    },
  };

  const commands = {
    registerCommand: (id: string, fn: (...args: any[]) => unknown) => {
      if (world.commands.has(id)) {
        throw new Error(`command '${id}' already exists`);
      }
      world.commands.set(id, fn);
      return new Disposable(() => world.commands.delete(id));
    },
    executeCommand: async (command: string, ...args: unknown[]) => {
      world.executed.push({ command, args });
      const fn = world.commands.get(command);
      return fn === undefined ? undefined : fn(...args);
    },
    getCommands: async () => [...world.commands.keys()],
  };

  const languages = new Proxy(
    {
      match: () => 10,
      createDiagnosticCollection: () => ({
        set: () => undefined,
        delete: () => undefined,
        clear: () => undefined,
        forEach: () => undefined,
        get: () => undefined,
        has: () => false,
        dispose: () => undefined,
      }),
    } as Record<string | symbol, unknown>,
    {
      get: (t, prop) => (prop in t ? t[prop] : () => new Disposable()),
    },
  );

  const known: Record<string, unknown> = {
    version: '1.82.0',
    Disposable,
    EventEmitter,
    Uri,
    ThemeColor,
    CancellationTokenSource,
    CancellationError,
    StatusBarAlignment,
    ViewColumn,
    ProgressLocation,
    window,
    workspace,
    commands,
    languages,
    env: { language: 'en', appName: 'Fake Code', machineId: 'test', openExternal: async () => true },
    extensions: { getExtension: (id: string) => world.extensions[id], all: [] },
  };

  /** An unknown export: a class (some are extended at load time) whose members read as 0. */
  const genericExport = () =>
    new Proxy(class Generic {}, {
      get: (t: any, prop) => (prop in t ? t[prop] : 0),
    });

  const cache = new Map<string | symbol, unknown>();
  return new Proxy(known, {
    get(t, prop) {
      if (typeof prop === 'string' && prop in t) {
        return t[prop];
      }
      if (prop === '__esModule' || prop === 'then' || prop === 'default') {
        return undefined;
      }
      if (!cache.has(prop)) {
        cache.set(prop, typeof prop === 'string' && /^[A-Z]/.test(prop) ? genericExport() : anything());
      }
      return cache.get(prop);
    },
  });
}

/** Makes `require('vscode')` return `fake` from now on. */
export function installFakeVscode(fake: unknown): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Module = require('node:module') as any;
  const originalLoad = Module._load;
  Module._load = function (request: string, ...rest: unknown[]) {
    if (request === 'vscode') {
      return fake;
    }
    return originalLoad.call(this, request, ...rest);
  };
}

export const extensionRoot = path.resolve(__dirname, '..', '..');
