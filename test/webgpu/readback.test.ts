// Readback buffers are pooled per device: repeated reads reuse them (the count of buffers made stops
// growing) and never return stale data from an earlier read of another value or size.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createWebgpuBackend } from '../../src/backends/webgpu/index.js';
import { ReadbackPool } from '../../src/backends/webgpu/readback-pool.js';
import * as F from '../../src/graph/api.js';
import { Graph } from '../../src/graph/graph.js';
import { planGraph } from '../../src/scheduler/plan.js';

test('sizes are powers of two from 256 bytes', () => {
  assert.equal([1, 256, 257, 4096, 5000].map(ReadbackPool.sizeFor), [256, 256, 512, 4096, 8192]);
});

test('repeated reads reuse buffers and return what was just computed', async () => {
  const backend = await createWebgpuBackend();
  try {
    const g = new Graph();
    const x = g.input('x', [300]), y = g.input('y', [7]);
    const x2 = F.scale(x, 2), y3 = F.scale(y, 3);
    g.markOutput(x2, y3);
    const exe = await backend.load(planGraph(g));
    const pool = backend.context.readbacks;
    let after3 = -1;
    for (let i = 0; i < 12; i++) {
      const xs = Float32Array.from({ length: 300 }, (_, k) => i * 1000 + k);
      const ys = Float32Array.from({ length: 7 }, (_, k) => -i - k);
      exe.write(x.id, xs);
      exe.write(y.id, ys);
      await exe.run();
      // Reads of different sizes, alone and together, in turn.
      const [a] = await exe.read([x2.id]);
      const [b] = await exe.read([y3.id]);
      const [c, d] = await exe.read([y3.id, x2.id]);
      assert.equal(Array.from(a!), Array.from(xs, (v) => 2 * v), `read ${i}: x`);
      assert.equal(Array.from(b!), Array.from(ys, (v) => 3 * v), `read ${i}: y`);
      assert.equal(Array.from(c!), Array.from(b!));
      assert.equal(Array.from(d!), Array.from(a!));
      if (i === 3) after3 = pool.created;
    }
    assert.ok(after3 > 0);
    assert.is(pool.created, after3, 'buffers kept being made after the first reads');
    exe.dispose();
  } finally {
    backend.dispose();
  }
});

test.run();
