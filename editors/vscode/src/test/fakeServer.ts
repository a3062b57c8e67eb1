/**
 * A minimal stand-in for `prompt-lsp serve` used by extension.test.ts: speaks LSP over stdio,
 * advertises the four prompt-lsp commands, sends a `promptLsp/score` notification for every
 * opened document and for `file:///ws/a.prompt` after `initialized`, and answers
 * workspace/executeCommand with a JSON echo of what it received.
 */
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';

const connection = createMessageConnection(
  new StreamMessageReader(process.stdin),
  new StreamMessageWriter(process.stdout),
);

let initializationOptions: unknown;
const settingsChanges: unknown[] = [];

connection.onRequest('initialize', (params: any) => {
  initializationOptions = params.initializationOptions;
  return {
    capabilities: {
      textDocumentSync: 1,
      executeCommandProvider: {
        commands: [
          'prompt-lsp.evaluate',
          'prompt-lsp.cancelEvaluation',
          'prompt-lsp.showRendered',
          'prompt-lsp.compareWithPrevious',
        ],
      },
    },
    serverInfo: { name: 'fake-prompt-lsp', version: '0.0.0' },
  };
});

connection.onNotification('initialized', () => {
  void connection.sendNotification('promptLsp/score', {
    uri: 'file:///ws/a.prompt',
    text: 'rougeL 0.412 ▲0.051',
    tooltip: 'rougeL 0.412 (previous 0.361)',
  });
});

connection.onNotification('workspace/didChangeConfiguration', (params: any) => {
  settingsChanges.push(params.settings);
});

connection.onRequest('workspace/executeCommand', (params: any) =>
  JSON.stringify({
    command: params.command,
    arguments: params.arguments,
    initializationOptions,
    settingsChanges,
    argv: process.argv.slice(2),
  }),
);

connection.onRequest('shutdown', () => null);
connection.onNotification('exit', () => process.exit(0));
connection.listen();
