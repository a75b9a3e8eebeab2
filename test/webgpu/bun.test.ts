// WebGPU under Bun: the `webgpu` package's Dawn addon loads in Bun, and the SwiftShader driver is picked
// as in Node (Bun's process.env does not reach native code, so device.ts sets it through libc as well).
// Needs dist/ (npm run build) and a Vulkan driver Dawn accepts (scripts/setup.sh installs SwiftShader).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GREEDY_256, STORIES_GGUF } from '../assets.js';
import { curveDiff } from '../backends/backends.js';
import { cli } from '../cli/run.js';

const bun = (args: string[]) => {
  const r = spawnSync('node_modules/.bin/bun', ['dist/cli.js', ...args], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
};
const steps = (stdout: string): number[] => stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => 'step' in l && !('event' in l)).map((l) => l.loss);

test('Bun: generate on webgpu gives greedy-256.txt\'s first 32 tokens exactly', () => {
  const r = bun(['generate', '--model', STORIES_GGUF, '--backend', 'webgpu', '--max-tokens', '32']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /backend: webgpu/);
  const want = readFileSync(GREEDY_256, 'utf8');
  assert.ok(r.stdout.length > 60 && want.startsWith(r.stdout), `Bun/webgpu printed:\n${r.stdout}`);
});

test('Bun: train on webgpu gives Node\'s loss curve (≤ 1e-4 per step)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'adaptkit-bun-gpu-'));
  const args = (backend: string) => ['train', '--model', STORIES_GGUF, '--steps', '3', '--batch', '2', '--seq', '32', '--backend', backend, '--out', join(dir, backend), '--json'];
  const node = cli(args('js')), gpu = bun(args('webgpu'));
  assert.is(node.code, 0, node.stderr);
  assert.is(gpu.code, 0, gpu.stderr);
  const ref = steps(node.stdout);
  assert.is(ref.length, 3);
  const d = curveDiff(steps(gpu.stdout), ref);
  assert.ok(d <= 1e-4, `Bun/webgpu vs Node/js: relative difference ${d}`);
});

test.run();
