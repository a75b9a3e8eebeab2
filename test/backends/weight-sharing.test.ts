// Frozen weights loaded with the same host array by several plans of one backend share one copy
// (Backend.load's `weights`): every plan computes what a plan with its own copy computes, the second
// plan takes memory for its arena only (wasm, counted), writing a weight another plan shares is refused,
// and the copy is freed with its last plan. On js, wasm and webgpu (where an adapter exists).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend } from '../../src/backends/backend.js';
import { createWasmBackend } from '../../src/backends/wasm/index.js';
import * as F from '../../src/graph/api.js';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { quantize } from '../../src/quant/codec.js';
import { Session } from '../../src/scheduler/session.js';
import { js, otherBackends } from './backends.js';

const K = 64, N = 96;
const wData = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.37));
const qData = quantize('q8_0', Float32Array.from({ length: N * K }, (_, i) => Math.cos(i * 0.11)));
const xData = Float32Array.from({ length: 3 * K }, (_, i) => (i % 7) - 3);

/** y = x·Wᵀ + x·Qᵀ with W f32 and Q q8_0 frozen weights. */
function graph(): { g: Graph; x: Tensor; w: Tensor; q: Tensor; y: Tensor } {
  const g = new Graph();
  const x = g.input('x', [3, K]), w = g.param('w', [N, K]), q = g.param('q', [N, K], 'q8_0');
  const y = F.add(F.matmul(x, w, { transB: true }), F.matmul(x, q, { transB: true }));
  g.markOutput(y);
  return { g, x, w, q, y };
}

async function output(s: Session, x: Tensor, y: Tensor): Promise<Float32Array> {
  s.set(x, xData);
  await s.run();
  return Float32Array.from(await s.get(y));
}

const backends: { name: string; backend: Backend }[] = [{ name: 'js', backend: js() }, ...(await otherBackends()).filter((b) => b.name !== 'wasm 2 threads')];

for (const { name, backend } of backends) {
  test(`${name}: plans loaded from the same arrays share the weights and compute what private copies compute`, async () => {
    const own = graph();
    const ref = await Session.create(own.g, backend);
    ref.set(own.w, wData);
    ref.set(own.q, qData);
    const want = await output(ref, own.x, own.y);
    ref.dispose();

    const a = graph(), b = graph();
    const sa = await Session.create(a.g, backend, undefined, new Map<Tensor, Float32Array | Uint8Array>([[a.w, wData], [a.q, qData]]));
    const sb = await Session.create(b.g, backend, undefined, new Map<Tensor, Float32Array | Uint8Array>([[b.w, wData], [b.q, qData]]));
    assert.equal(await output(sa, a.x, a.y), want);
    assert.equal(await output(sb, b.x, b.y), want);
    // Writing a weight another plan shares would change that plan: refused, naming the weight.
    assert.throws(() => sa.set(a.w, new Float32Array(N * K)), /write to %\d+ \(w\): this frozen weight is shared with 1 other loaded plan/);
    sb.dispose();
    // Alone now, the plan may write it: the copy becomes its own.
    sa.set(a.w, new Float32Array(N * K));
    const c = graph();
    const sc = await Session.create(c.g, backend, undefined, new Map<Tensor, Float32Array | Uint8Array>([[c.w, wData], [c.q, qData]]));
    // A plan loaded afterwards from the same array gets the array's values, not the rewritten copy.
    assert.equal(await output(sc, c.x, c.y), want);
    sa.dispose();
    sc.dispose();
  });
}

test('wasm: the second plan takes its arena only; the shared copy is freed with the last plan', async () => {
  const wasm = await createWasmBackend({ threads: 1 });
  const free = () => wasm.memoryCaps!().totalBytes!;
  const weightBytes = wData.byteLength + qData.byteLength;
  const before = free();
  const a = graph(), b = graph();
  const sa = await Session.create(a.g, wasm, undefined, new Map<Tensor, Float32Array | Uint8Array>([[a.w, wData], [a.q, qData]]));
  const afterA = free();
  assert.ok(before - afterA >= weightBytes, `the first plan holds the weights (${before - afterA} bytes)`);
  const sb = await Session.create(b.g, wasm, undefined, new Map<Tensor, Float32Array | Uint8Array>([[b.w, wData], [b.q, qData]]));
  const second = afterA - free();
  assert.ok(second < weightBytes / 4, `the second plan took ${second} bytes; the weights are ${weightBytes}`);
  // Other arrays with equal values are other weights: not shared.
  const c = graph();
  const sc = await Session.create(c.g, wasm, undefined, new Map<Tensor, Float32Array | Uint8Array>([[c.w, wData.slice()], [c.q, qData.slice()]]));
  assert.ok(afterA - free() - second >= weightBytes, 'a copy of the arrays was shared');
  sc.dispose();
  sa.dispose();
  assert.ok(free() < before - weightBytes + 1, 'the copy went with the first plan, though the second still holds it');
  sb.dispose();
  assert.is(free(), before, 'memory left held after every plan was disposed');
  wasm.dispose();
});

test.run();
