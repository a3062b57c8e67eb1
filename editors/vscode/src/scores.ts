/**
 * The `promptLsp/score` notification: `{ uri, text, tooltip }`, where `text` is the headline score
 * already formatted by the server (e.g. `rougeL 0.412 ▲0.051`). The extension keeps the last one
 * per document and shows it in the status bar while that document is the active editor.
 *
 * No `vscode` import here, so that the unit tests run under plain Node.
 */

export const SCORE_NOTIFICATION = 'promptLsp/score';

export interface ScoreParams {
  uri: string;
  text: string;
  tooltip?: string;
}

export interface ScoreEntry {
  text: string;
  tooltip: string;
  /** The delta is a drop (the server marks it with ▼). */
  regressed: boolean;
}

export function isScoreParams(value: unknown): value is ScoreParams {
  if (typeof value !== 'object' || value === null) {
    return false;
  }
  const v = value as Record<string, unknown>;
  return (
    typeof v.uri === 'string' &&
    v.uri !== '' &&
    typeof v.text === 'string' &&
    (v.tooltip === undefined || v.tooltip === null || typeof v.tooltip === 'string')
  );
}

export class ScoreBoard {
  private readonly entries = new Map<string, ScoreEntry>();

  /** `normalize` maps a URI string to the form the editor uses (e.g. `Uri.parse(u).toString()`). */
  constructor(private readonly normalize: (uri: string) => string = (uri) => uri) {}

  /**
   * Records a notification. An empty `text` forgets the document's score. Returns the normalized
   * URI, or undefined when the params are malformed.
   */
  update(params: unknown): string | undefined {
    if (!isScoreParams(params)) {
      return undefined;
    }
    let key: string;
    try {
      key = this.normalize(params.uri);
    } catch {
      return undefined;
    }
    const text = params.text.trim();
    if (text === '') {
      this.entries.delete(key);
    } else {
      this.entries.set(key, {
        text,
        tooltip: params.tooltip ?? '',
        regressed: text.includes('▼'),
      });
    }
    return key;
  }

  get(uri: string): ScoreEntry | undefined {
    return this.entries.get(uri);
  }

  delete(uri: string): void {
    this.entries.delete(uri);
  }

  get size(): number {
    return this.entries.size;
  }
}

export interface ActiveDocument {
  uri: string;
  languageId: string;
}

/** What the status bar shows for the active document: its score, or nothing (hidden). */
export function statusFor(
  board: ScoreBoard,
  active: ActiveDocument | undefined,
  languageId: string,
): ScoreEntry | undefined {
  if (active === undefined || active.languageId !== languageId) {
    return undefined;
  }
  return board.get(active.uri);
}
