// The CLI as a user runs it: output contracts, errors and exit codes.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GREEDY_256, STORIES_BIN, STORIES_GGUF, STORIES_TOK, TINYSTORIES_VAL } from '../assets.js';
import { cli } from './run.js';

test('generate prints only the generated text: greedy 256 from GGUF and from llama2.c equal greedy-256.txt', () => {
  const ref = readFileSync(GREEDY_256, 'utf8');
  const a = cli(['generate', '--model', STORIES_GGUF, '--max-tokens', '256', '--backend', 'js']);
  assert.is(a.code, 0, a.stderr);
  assert.is(a.stdout, ref);
  const b = cli(['generate', '--model', STORIES_BIN, '--tokenizer', STORIES_TOK, '--backend', 'js']);
  assert.is(b.code, 0, b.stderr);
  assert.is(b.stdout, ref);
});

test('generate with a prompt, sampling and Mirostat runs and continues the prompt', () => {
  const r = cli(['generate', '--model', STORIES_GGUF, '--prompt', 'Once upon a time', '--max-tokens', '20', '--temperature', '0.9', '--top-k', '40', '--top-p', '0.95', '--seed', '3', '--backend', 'js']);
  assert.is(r.code, 0, r.stderr);
  assert.ok(r.stdout.startsWith('Once upon a time') && r.stdout.length > 'Once upon a time'.length + 10, r.stdout);
  const m = cli(['generate', '--model', STORIES_GGUF, '--max-tokens', '20', '--mirostat', '4', '--backend', 'js']);
  assert.is(m.code, 0, m.stderr);
  assert.ok(m.stdout.length > 10);
});

test('eval --json ends with {"loss", "tokens"}', () => {
  const r = cli(['eval', '--model', STORIES_GGUF, '--data', TINYSTORIES_VAL, '--paragraphs', '8', '--max-tokens', '64', '--backend', 'js', '--json']);
  assert.is(r.code, 0, r.stderr);
  const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.ok(last.loss > 0.5 && last.loss < 3, String(last.loss));
  assert.ok(Number.isInteger(last.tokens) && last.tokens > 100);
});

test('info describes the model and the backend choice', () => {
  const r = cli(['info', '--model', STORIES_GGUF, '--backend', 'js']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /5 layers, dim 64, FFN 172, 8 heads \(4 key\/value heads/);
  assert.match(r.stdout, /adjacent pairs/);
  assert.match(r.stdout, /backend: js/);
});

test('bad input: a missing file, an unknown option and an unknown command give clear errors and exit codes', () => {
  const a = cli(['generate', '--model', '/nope/model.gguf', '--backend', 'js']);
  assert.is(a.code, 1);
  assert.match(a.stderr, /\/nope\/model\.gguf/);
  const b = cli(['eval', '--model', STORIES_GGUF, '--data', TINYSTORIES_VAL, '--colour', 'red']);
  assert.is(b.code, 2);
  assert.match(b.stderr, /unknown option --colour/);
  const c = cli(['frobnicate']);
  assert.is(c.code, 2);
  assert.match(c.stderr, /unknown command 'frobnicate'/);
  const d = cli(['generate', '--model', STORIES_GGUF, '--max-tokens', 'many']);
  assert.is(d.code, 2);
  assert.match(d.stderr, /--max-tokens must be an integer/);
  const e = cli(['generate', '--model', STORIES_GGUF, '--backend', 'quantum']);
  assert.is(e.code, 2);
  assert.match(e.stderr, /--backend must be one of auto, webgpu, wasm, js \(got 'quantum'\)/);
});

test('the installed command picks relaxed SIMD on wasm without any node flag (Node 20 needs one, set at start-up)', () => {
  // The bin wrapper runs the built bundle as a user's `npx adaptkit` does: no --experimental-wasm-relaxed-simd.
  const r = spawnSync(process.execPath, ['bin/adaptkit.mjs', 'info', '--backend', 'wasm'], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /backend: wasm \(relaxed SIMD/);
});

test.run();
