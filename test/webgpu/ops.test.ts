// Every op on WebGPU against the js backend, forward and backward (cases and tolerances in op-cases.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { createWebgpuBackend } from '../../src/backends/webgpu/index.js';
import { opNames, getOp } from '../../src/graph/ops/index.js';
import { webgpuKernels } from '../../src/backends/webgpu/kernels/index.js';
import { cases, checkAdamw, checkCase } from './op-cases.js';

let gpu: Backend | null = null;
const js = createJsBackend();
// uvu reports nothing when a `before` hook throws, so a failure to set up is kept and fails every test.
let setupError: unknown = null;

test.before(async () => {
  try {
    gpu = await createWebgpuBackend();
    console.log(`# ${gpu.describe()}`);
  } catch (e) {
    setupError = e;
  }
});
test.after(() => { gpu?.dispose(); });

test('every op of the catalogue that runs a kernel has a webgpu kernel', () => {
  const missing = opNames().filter((op) => !getOp(op).view && !webgpuKernels[op]);
  assert.equal(missing, []);
});

for (const c of cases) {
  test(c.name, async () => {
    if (setupError) throw setupError;
    const r = await checkCase(gpu!, js, c);
    assert.ok(r.ok, r.detail);
  });
}

test('adamw', async () => {
  if (setupError) throw setupError;
  const r = await checkAdamw(gpu!, js);
  assert.ok(r.ok, r.detail);
});

test.run();
