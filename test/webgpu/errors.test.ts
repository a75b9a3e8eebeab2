// Failures on WebGPU surface as errors that name the kernel and the graph node, or the device loss.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createWebgpuBackend } from '../../src/backends/webgpu/index.js';
import { GpuContext } from '../../src/backends/webgpu/device.js';
import { loadPlan, type KernelImpl } from '../../src/backends/webgpu/executable.js';
import { ADAMW_HYPER_BYTES, adamwKernel, recordAdamw } from '../../src/backends/webgpu/kernels/adamw.js';
import { webgpuKernels } from '../../src/backends/webgpu/kernels/index.js';
import { PipelineCache } from '../../src/backends/webgpu/pipelines.js';
import * as F from '../../src/graph/api.js';
import { Graph } from '../../src/graph/graph.js';
import { planGraph } from '../../src/scheduler/plan.js';

function twoSteps(): { g: Graph; a: number; y: number } {
  const g = new Graph();
  const a = g.input('a', [4, 4]);
  const y = g.within('model.layers.0.mlp', () => F.matmul(F.exp(a), a));
  g.markOutput(y);
  return { g, a: a.id, y: y.id };
}

test('a kernel that fails validation at run time is named with its node', async () => {
  const ctx = await GpuContext.create();
  try {
    // A matmul that binds its A operand too short for the shader's vec4 array: caught when the pass is
    // validated, after the whole plan was encoded.
    const broken: KernelImpl = async (s) => {
      const k = await s.kernel('matmul', 'main', { TRANS_A: false, TRANS_B: false, VEC_A: true, VEC_B: true });
      const u = s.uniform(new Uint32Array([4, 4, 4, 0, 0, 0, 16, 0, 1, 0, 0, 0]));
      s.dispatch(k, { p: u, a: { ...s.input(0), size: 4 }, w: s.input(1), c: s.output(0) }, [1, 1, 1]);
    };
    const { g } = twoSteps();
    const exe = await loadPlan(ctx, new PipelineCache(ctx), planGraph(g), {
      kernels: { ...webgpuKernels, matmul: broken }, adamw: recordAdamw, adamwKernel, adamwHyperBytes: ADAMW_HYPER_BYTES,
    });
    const err = await exe.run().then(() => null, (e: Error) => e);
    assert.ok(err, 'run() should have failed');
    assert.match(err!.message, /kernel matmul \(step 1, node #1 model\.layers\.0\.mlp/);
    exe.dispose();
  } finally {
    ctx.destroy();
  }
});

test('a lost device is reported by the next call, naming the work in flight', async () => {
  const backend = await createWebgpuBackend();
  const { g, a, y } = twoSteps();
  const exe = await backend.load(planGraph(g));
  exe.write(a, new Float32Array(16).fill(0.5));
  await exe.run();
  backend.context.device.destroy();
  await backend.context.device.lost;
  const err = await exe.read([y]).then(() => null, (e: Error) => e);
  assert.ok(err, 'read() should have failed');
  assert.match(err!.message, /device was lost/);
  assert.match(err!.message, /run/);
  exe.dispose();
  backend.dispose();
});

test('an op without a webgpu kernel is refused at load, by name', async () => {
  const ctx = await GpuContext.create();
  try {
    const { g } = twoSteps();
    const err = await loadPlan(ctx, new PipelineCache(ctx), planGraph(g), {
      kernels: { matmul: webgpuKernels.matmul! }, adamw: recordAdamw, adamwKernel, adamwHyperBytes: ADAMW_HYPER_BYTES,
    }).then(() => null, (e: Error) => e);
    assert.match(err?.message ?? '', /no kernel for exp/);
  } finally {
    ctx.destroy();
  }
});

test('write checks the element count', async () => {
  const backend = await createWebgpuBackend();
  const { g, a } = twoSteps();
  const exe = await backend.load(planGraph(g));
  assert.throws(() => exe.write(a, new Float32Array(3)), /got 3 elements/);
  exe.dispose();
  backend.dispose();
});

test.run();
