// The worker pool's life cycle, each case in a fresh Node process: it exits once the backend is
// disposed (and also when the caller forgets to), and without SharedArrayBuffer the backend runs on one
// thread with the plain-memory build.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const runtime = fileURLToPath(new URL('../../src/backends/wasm/runtime.ts', import.meta.url));
const matmul = fileURLToPath(new URL('../../src/backends/wasm/matmul.ts', import.meta.url));

function node(body: string): { status: number | null; out: string } {
  const code = `
    import { WasmRuntime } from ${JSON.stringify(runtime)};
    import { matmul } from ${JSON.stringify(matmul)};
    ${body}
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    encoding: 'utf8', timeout: 30_000, cwd: fileURLToPath(new URL('../..', import.meta.url)),
  });
  return { status: r.status, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

const work = `
  const n = 200;
  const p = rt.heap.alloc(3 * n * n * 4);
  rt.f32(p, 2 * n * n).fill(1);
  matmul(rt, { a: p, b: p + n * n * 4, c: p + 2 * n * n * 4, batch: 1, M: n, N: n, K: n, strideA: 0, strideB: 0, strideC: 0 });
  console.log(rt.describe(), rt.f32(p + 2 * n * n * 4, 1)[0]);
`;

test('the process exits after dispose()', () => {
  const r = node(`const rt = await WasmRuntime.create({ threads: 2 }); ${work} rt.dispose();`);
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /2 threads\) 200/);
});

test('idle workers do not keep the process alive without dispose()', () => {
  const r = node(`const rt = await WasmRuntime.create({ threads: 2 }); ${work}`);
  assert.is(r.status, 0, r.out);
});

test('without SharedArrayBuffer: one thread, plain memory', () => {
  const r = node(`delete globalThis.SharedArrayBuffer; const rt = await WasmRuntime.create({ threads: 4 }); ${work} console.log(rt.shared, rt.memory.buffer instanceof ArrayBuffer); rt.dispose();`);
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /1 thread\) 200\s+false true/);
});

test.run();
