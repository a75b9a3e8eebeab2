// adaptkit select: the output file holds a subset of the data's lines, unchanged and in their original
// order, for every method; --json's summary names the same lines; clear errors for a bad --method, --keep
// larger than the data, a missing file, and nudge without --target.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { STORIES_GGUF } from '../assets.js';
import { cli } from '../cli/run.js';
import { planted } from './planted.js';

const dir = mkdtempSync(join(tmpdir(), 'select-cli-'));
const P = planted();
const data = join(dir, 'data.jsonl'), target = join(dir, 'target.jsonl');
writeFileSync(data, `${P.lines.map((l, i) => (i % 4 === 0 ? l.replace('{', '{ ') : l)).join('\n')}\n`);
writeFileSync(target, `${JSON.stringify({ text: 'Lily and her mom went to the park. They saw a big dog.' })}\n`);
const base = ['--model', STORIES_GGUF, '--backend', 'js', '--data', data];

function isOrderedSubset(out: string[], all: string[]): boolean {
  let k = 0;
  for (const l of out) { while (k < all.length && all[k] !== l) k++; if (k === all.length) return false; k++; }
  return true;
}

for (const method of ['cdas', 'deita', 'nudge', 'adapt-inf']) {
  test(`select --method ${method}: kept lines unchanged, in order; --json names them`, () => {
    const out = join(dir, `${method}.jsonl`);
    const extra = method === 'nudge' ? ['--target', target] : [];
    const r = cli(['select', ...base, '--method', method, '--keep', '5', '--out', out, '--seed', '3', ...extra]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${method}: kept \\d+ of 12 examples`));
    const all = readFileSync(data, 'utf8').split('\n').filter(Boolean);
    const kept = readFileSync(out, 'utf8').split('\n').filter(Boolean);
    assert.ok(kept.length >= 1 && kept.length <= 5);
    assert.ok(isOrderedSubset(kept, all), kept.join('\n'));
    const j = cli(['select', ...base, '--method', method, '--keep', '5', '--out', out, '--seed', '3', '--json', ...extra]);
    assert.equal(j.code, 0, j.stderr);
    const s = JSON.parse(j.stdout) as { method: string; lines: number[]; kept: number };
    assert.equal(s.method, method);
    assert.equal(s.lines.map((n) => all[n - 1]), kept);
  });
}

test('select: clear errors', () => {
  const out = join(dir, 'x.jsonl');
  let r = cli(['select', ...base, '--method', 'random', '--keep', '2', '--out', out]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /method/);
  assert.match(r.stderr, /cdas/);
  r = cli(['select', ...base, '--method', 'cdas', '--keep', '13', '--out', out]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--keep 13 is more than the 12 examples/);
  r = cli(['select', '--model', STORIES_GGUF, '--data', join(dir, 'missing.jsonl'), '--method', 'cdas', '--keep', '2', '--out', out]);
  assert.not.equal(r.code, 0);
  assert.match(r.stderr, /missing\.jsonl/);
  r = cli(['select', ...base, '--method', 'nudge', '--keep', '2', '--out', out]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--target/);
});

test.run();
