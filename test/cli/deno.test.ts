// The same CLI under Deno (`npm run cli:deno -- …` runs dist/cli.js with the deno binary from npm).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GREEDY_256, STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';
import { cli } from './run.js';

const deno = (args: string[]) => {
  const r = spawnSync('node_modules/.bin/deno', ['run', '-A', 'dist/cli.js', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
};

test('Deno: generate on wasm prints exactly greedy-256.txt', () => {
  const r = deno(['generate', '--model', STORIES_GGUF, '--backend', 'wasm']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, readFileSync(GREEDY_256, 'utf8'));
});

test('Deno: train writes an adapter whose eval loss Node reproduces', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'adaptkit-deno-')), 'adapter');
  const t = deno(['train', '--model', STORIES_GGUF, '--steps', '3', '--batch', '2', '--seq', '32', '--backend', 'wasm', '--out', out, '--json']);
  assert.is(t.code, 0, t.stderr);
  const evalArgs = ['eval', '--model', STORIES_GGUF, '--adapter', out, '--data', TINYSTORIES_VAL, '--paragraphs', '4', '--max-tokens', '32', '--json', '--backend'];
  const a = deno([...evalArgs, 'wasm']), b = cli([...evalArgs, 'js']);
  assert.is(a.code, 0, a.stderr);
  const la = JSON.parse(a.stdout.trim().split('\n').pop()!).loss, lb = JSON.parse(b.stdout.trim().split('\n').pop()!).loss;
  assert.ok(Math.abs(la - lb) / lb < 1e-5, `Deno/wasm ${la} vs Node/js ${lb}`);
});

test.run();
