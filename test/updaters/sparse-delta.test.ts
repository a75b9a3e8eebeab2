// Sparse delta format: byte-for-byte reload, composition equals the sum of parts (checked against dense sums),
// applying equals merging the dense difference, and bad deltas are refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applySparseDelta, composeSparseDeltas, readSparseDelta, writeSparseDelta, type SparseDelta } from '../../src/updaters/sparse/delta.js';
import { parseSafetensors } from '../../src/formats/safetensors.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}
function randomDelta(seed: number, sizes: Record<string, number>, density: number): SparseDelta {
  const r = rng(seed);
  const d: SparseDelta = new Map();
  for (const [name, n] of Object.entries(sizes)) {
    const idx: number[] = [];
    for (let i = 0; i < n; i++) if (r() < density) idx.push(i);
    d.set(name, { indices: Int32Array.from(idx), values: Float32Array.from(idx, () => r() - 0.5) });
  }
  return d;
}
const SIZES = { 'model.layers.0.self_attn.q_proj.weight': 300, 'model.embed_tokens.weight': 500 };

test('a saved delta reloads and re-saves byte for byte, with the reference key layout', () => {
  const d = randomDelta(1, SIZES, 0.1);
  const bytes = writeSparseDelta(d, 'task');
  const keys = parseSafetensors(bytes).tensors.map((t) => t.name);
  assert.ok(keys.includes('model.layers.0.self_attn.q_proj.sft_delta.task.values'));
  assert.ok(keys.includes('model.layers.0.self_attn.q_proj.sft_delta.task.indices'));
  const back = readSparseDelta(bytes);
  for (const [n, t] of d) {
    assert.equal([...back.get(n)!.indices], [...t.indices]);
    assert.equal([...back.get(n)!.values], [...t.values]);
  }
  assert.equal(writeSparseDelta(back, 'task'), bytes);
});

test('a composed delta equals the sum of its parts (dense check, overlapping indices added)', () => {
  const a = randomDelta(2, SIZES, 0.2), b = randomDelta(3, SIZES, 0.2);
  const base = new Map(Object.entries(SIZES).map(([n, s]) => [n, new Float32Array(s)]));
  const ab = applySparseDelta(base, composeSparseDeltas([a, b]));
  const sep = applySparseDelta(applySparseDelta(base, a), b);
  let overlap = 0;
  for (const [n] of Object.entries(SIZES)) {
    const ia = new Set(a.get(n)!.indices);
    for (const k of b.get(n)!.indices) if (ia.has(k)) overlap++;
    const x = ab.get(n)!, y = sep.get(n)!;
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i] - y[i]) <= 1e-7, `${n}[${i}]`);
  }
  assert.ok(overlap > 0, 'the test deltas must overlap');
});

test('applying a reloaded delta equals applying the original (merge gives the same model)', () => {
  const d = randomDelta(4, SIZES, 0.05);
  const r = rng(9);
  const base = new Map(Object.entries(SIZES).map(([n, s]) => [n, Float32Array.from({ length: s }, () => r())]));
  const m1 = applySparseDelta(base, d), m2 = applySparseDelta(base, readSparseDelta(writeSparseDelta(d)));
  for (const [n, t] of m1) assert.equal([...m2.get(n)!], [...t]);
  const q = 'model.layers.0.self_attn.q_proj.weight';
  const k = d.get(q)!.indices[0];
  assert.is(m1.get(q)![k], Math.fround(base.get(q)![k] + d.get(q)!.values[0]));
});

test('bad deltas are refused', () => {
  assert.throws(() => writeSparseDelta(new Map([['w', { indices: Int32Array.from([3, 1]), values: new Float32Array(2) }]])), /strictly increasing/);
  const base = new Map([['w', new Float32Array(4)]]);
  assert.throws(() => applySparseDelta(base, new Map([['w', { indices: Int32Array.from([9]), values: new Float32Array(1) }]])), /outside/);
  assert.throws(() => applySparseDelta(base, new Map([['v', { indices: Int32Array.from([0]), values: new Float32Array(1) }]])), /does not have/);
});

test.run();
