// The wasm backend under Bun (npm package `bun`): threads through Web Workers started from a Blob URL
// (Bun's worker_threads workers never see their first message when they test for `self`), a process
// that exits once the pool is disposed, and the backend parity tests run by Bun itself.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const bun = fileURLToPath(new URL('../../node_modules/.bin/bun', import.meta.url));
const run = (file: string) => spawnSync(bun, [fileURLToPath(new URL(file, import.meta.url))], {
  encoding: 'utf8', timeout: 60_000, env: { ...process.env, FORCE_COLOR: '0', ADAPTKIT_TEST_WEBGPU: '0' },
});

test('Bun: 2 threads over Web Workers agree with 1 thread, and the process exits', () => {
  assert.ok(existsSync(bun), 'the bun binary (devDependency `bun`) is missing: run npm install');
  const r = run('./pool-main.ts');
  assert.is(r.status, 0, `bun exited with ${r.status}: ${r.stderr}`);
  assert.match(r.stdout, /^ok wasm \((relaxed SIMD|SIMD128), 2 threads\)/);
});

test('Bun: the backend parity tests (loss curves of wasm on 1 and 2 threads vs js, ≤ 1e-4) pass', () => {
  // Bun runs the uvu file itself, TypeScript included; webgpu in Bun is covered by test/webgpu/bun.test.ts.
  const r = run('../backends/parity.test.ts');
  const out = `${r.stdout}\n${r.stderr}`;
  assert.is(r.status, 0, `bun exited with ${r.status}:\n${out}`);
  assert.match(out, /Passed:\s+3\b/);
  assert.match(out, /Total:\s+3\b/);
});

test.run();
