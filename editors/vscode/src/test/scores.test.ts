import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { isScoreParams, SCORE_NOTIFICATION, ScoreBoard, statusFor } from '../scores';

describe('scores', () => {
  it('uses the promptLsp/score method', () => {
    assert.equal(SCORE_NOTIFICATION, 'promptLsp/score');
  });

  it('validates params', () => {
    assert.ok(isScoreParams({ uri: 'file:///a.prompt', text: 'rougeL 0.412 ▲0.051', tooltip: 't' }));
    assert.ok(isScoreParams({ uri: 'file:///a.prompt', text: 'x' }));
    assert.ok(!isScoreParams({ uri: 'file:///a.prompt' }));
    assert.ok(!isScoreParams({ uri: '', text: 'x' }));
    assert.ok(!isScoreParams({ uri: 'file:///a.prompt', text: 1 }));
    assert.ok(!isScoreParams(null));
    assert.ok(!isScoreParams('file:///a.prompt'));
  });

  it('keeps the last score per uri and shows it only for that prompt document', () => {
    const board = new ScoreBoard();
    board.update({ uri: 'file:///a.prompt', text: 'rougeL 0.400', tooltip: 'first' });
    board.update({ uri: 'file:///a.prompt', text: 'rougeL 0.412 ▲0.012', tooltip: 'second' });
    board.update({ uri: 'file:///b.prompt', text: 'exact_match 0.500 ▼0.100', tooltip: '' });

    assert.deepEqual(statusFor(board, { uri: 'file:///a.prompt', languageId: 'prompt' }, 'prompt'), {
      text: 'rougeL 0.412 ▲0.012',
      tooltip: 'second',
      regressed: false,
    });
    assert.equal(statusFor(board, { uri: 'file:///b.prompt', languageId: 'prompt' }, 'prompt')?.regressed, true);
    assert.equal(statusFor(board, { uri: 'file:///c.prompt', languageId: 'prompt' }, 'prompt'), undefined);
    assert.equal(statusFor(board, { uri: 'file:///a.prompt', languageId: 'python' }, 'prompt'), undefined);
    assert.equal(statusFor(board, undefined, 'prompt'), undefined);
  });

  it('forgets a score on empty text and ignores malformed params', () => {
    const board = new ScoreBoard();
    assert.equal(board.update({ uri: 'file:///a.prompt', text: 'rougeL 0.4' }), 'file:///a.prompt');
    assert.equal(board.update({ uri: 'file:///a.prompt', text: '  ' }), 'file:///a.prompt');
    assert.equal(board.size, 0);
    assert.equal(board.update({ text: 'x' }), undefined);
  });

  it('normalizes uris so the server and the editor spellings meet', () => {
    const board = new ScoreBoard((u) => u.replace('%3A', ':').toLowerCase());
    board.update({ uri: 'file:///C%3A/p/a.prompt', text: 'rougeL 0.5' });
    assert.equal(board.get('file:///c:/p/a.prompt')?.text, 'rougeL 0.5');
  });

  it('drops a notification whose uri cannot be normalized', () => {
    const board = new ScoreBoard(() => {
      throw new Error('bad uri');
    });
    assert.equal(board.update({ uri: 'file:///a.prompt', text: 'x' }), undefined);
    assert.equal(board.size, 0);
  });
});
