// The built CLI under Bun (npm package `bun`): the same greedy text and the same training run as Node.
// Needs dist/ (npm run build), as the Deno test does.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GREEDY_256, STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';
import { curveDiff } from '../backends/backends.js';
import { cli } from './run.js';

const bun = (args: string[]) => {
  const r = spawnSync('node_modules/.bin/bun', ['dist/cli.js', ...args], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
};
const steps = (stdout: string): number[] => stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => 'step' in l && !('event' in l)).map((l) => l.loss);
const lastLoss = (stdout: string): number => JSON.parse(stdout.trim().split('\n').pop()!).loss;

for (const backend of ['wasm', 'js']) {
  test(`Bun: generate on ${backend} prints exactly greedy-256.txt`, () => {
    const r = bun(['generate', '--model', STORIES_GGUF, '--backend', backend, ...(backend === 'wasm' ? ['--threads', '2'] : [])]);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, readFileSync(GREEDY_256, 'utf8'));
    if (backend === 'wasm') assert.match(r.stderr, /backend: wasm \(.*2 threads\)/);
  });
}

test('Bun: train on wasm and js gives Node\'s loss curve (≤ 1e-4 per step); Node reproduces its eval loss', () => {
  const dir = mkdtempSync(join(tmpdir(), 'adaptkit-bun-'));
  const args = (backend: string, out: string) => ['train', '--model', STORIES_GGUF, '--steps', '5', '--batch', '2', '--seq', '32', '--backend', backend, '--out', join(dir, out), '--json'];
  const node = cli(args('js', 'node'));
  assert.is(node.code, 0, node.stderr);
  const ref = steps(node.stdout);
  assert.is(ref.length, 5);
  for (const backend of ['wasm', 'js']) {
    const t = bun(args(backend, backend));
    assert.is(t.code, 0, t.stderr);
    const d = curveDiff(steps(t.stdout), ref);
    assert.ok(d <= 1e-4, `Bun/${backend} vs Node/js: relative difference ${d}`);
  }
  const evalArgs = (out: string, backend: string) => ['eval', '--model', STORIES_GGUF, '--adapter', join(dir, out), '--data', TINYSTORIES_VAL, '--paragraphs', '4', '--max-tokens', '32', '--json', '--backend', backend];
  const a = bun(evalArgs('wasm', 'wasm')), b = cli(evalArgs('wasm', 'js'));
  assert.is(a.code, 0, a.stderr);
  assert.is(b.code, 0, b.stderr);
  const [la, lb] = [lastLoss(a.stdout), lastLoss(b.stdout)];
  assert.ok(Math.abs(la - lb) / lb < 1e-5, `Bun/wasm ${la} vs Node/js ${lb}`);
});

test.run();
