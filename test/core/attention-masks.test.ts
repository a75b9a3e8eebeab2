// Attention's sliding window, logit soft-cap and per-row key padding on the js backend:
//   forward (float64 js backend) against a naive float64 reference written here from explicit masks,
//     max |got − ref| ≤ 1e-12 · max |ref| (both float64; only summation order differs);
//   gradients (float64) against central finite differences (eps 1e-6), relative error < 1e-6 (as in
//     gradients.test.ts: truncation ~1e-12, rounding ~1e-10).
// The window follows Hugging Face Mistral / Gemma 2: the query at position p sees keys p − w < j ≤ p.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import * as F from '../../src/graph/api.js';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph } from '../../src/graph/graph.js';
import { buildGraph, gradCheck, maxRelErr, runOnce, type LeafSpec } from '../helpers.js';

const js64 = createJsBackend({ precision: 'f64' });
const FWD_TOL = 1e-12, GRAD_TOL = 1e-6;

interface Spec {
  B: number; T: number; S: number; Hq: number; Hkv: number; D: number;
  causal: boolean; window?: number; softcap?: number; scale?: number;
  /** i32 [1] KV-cache fill, or per-row key lengths (i32 [B]). */
  kvLen?: number; rows?: number[];
  /** Spread of the inputs (large enough that a soft-cap bends the scores). */
  spread?: number;
}

/** Whether query t of row b may see key j: written from the definitions, one condition each. */
function allowed(s: Spec, b: number, t: number, j: number): boolean {
  const valid = s.kvLen ?? s.rows?.[b] ?? s.S;
  if (j >= valid) return false;
  if (!s.causal) return true;
  // The last query sits at the last key of the cache (kvLen − 1), or of the whole buffer (S − 1).
  const pos = t + (s.kvLen ?? s.S) - s.T;
  if (j > pos) return false;
  return s.window === undefined || pos - j < s.window;
}

/** Naive float64 attention: a full score matrix, an explicit mask, softmax, weighted sum of values. */
function reference(s: Spec, q: Float64Array, k: Float64Array, v: Float64Array): Float64Array {
  const out = new Float64Array(s.B * s.T * s.Hq * s.D);
  const scale = s.scale ?? 1 / Math.sqrt(s.D);
  for (let b = 0; b < s.B; b++) for (let h = 0; h < s.Hq; h++) for (let t = 0; t < s.T; t++) {
    const kh = Math.floor(h / (s.Hq / s.Hkv));
    const w: number[] = [];
    for (let j = 0; j < s.S; j++) {
      if (!allowed(s, b, t, j)) { w.push(-Infinity); continue; }
      let dot = 0;
      for (let e = 0; e < s.D; e++) dot += q[((b * s.T + t) * s.Hq + h) * s.D + e]! * k[((b * s.S + j) * s.Hkv + kh) * s.D + e]!;
      const x = dot * scale;
      w.push(s.softcap ? s.softcap * Math.tanh(x / s.softcap) : x);
    }
    const mx = Math.max(...w);
    if (mx === -Infinity) continue;
    const p = w.map((x) => Math.exp(x - mx));
    const z = p.reduce((a, c) => a + c, 0);
    for (let e = 0; e < s.D; e++) {
      let acc = 0;
      for (let j = 0; j < s.S; j++) acc += (p[j]! / z) * v[((b * s.S + j) * s.Hkv + kh) * s.D + e]!;
      out[((b * s.T + t) * s.Hq + h) * s.D + e] = acc;
    }
  }
  return out;
}

function leaves(s: Spec): LeafSpec[] {
  const l: LeafSpec[] = [
    { name: 'q', shape: [s.B, s.T, s.Hq, s.D], scale: s.spread ?? 1 },
    { name: 'k', shape: [s.B, s.S, s.Hkv, s.D], scale: s.spread ?? 1 },
    { name: 'v', shape: [s.B, s.S, s.Hkv, s.D] },
  ];
  if (s.kvLen !== undefined) l.push({ name: 'len', shape: [1], dtype: 'i32', data: [s.kvLen] });
  if (s.rows) l.push({ name: 'len', shape: [s.B], dtype: 'i32', data: s.rows });
  return l;
}

const body = (s: Spec) => ([q, k, v, len]: import('../../src/graph/graph.js').Tensor[]) => F.attention(q!, k!, v!, {
  causal: s.causal, ...(s.scale !== undefined ? { scale: s.scale } : {}),
  ...(s.window !== undefined ? { window: s.window } : {}), ...(s.softcap !== undefined ? { softcap: s.softcap } : {}),
  ...(s.rows ? { keyLengths: len! } : {}),
}, s.kvLen !== undefined ? len : undefined);

const cases: [string, Spec][] = [
  ['window 3, GQA, T = S', { B: 2, T: 7, S: 7, Hq: 4, Hkv: 2, D: 3, causal: true, window: 3 }],
  ['window 1 (each query sees itself)', { B: 1, T: 5, S: 5, Hq: 2, Hkv: 1, D: 4, causal: true, window: 1 }],
  ['window longer than the keys (plain causal)', { B: 1, T: 4, S: 6, Hq: 2, Hkv: 2, D: 3, causal: true, window: 50 }],
  ['window 3 with kvLen 8 of a cache of 10, two queries', { B: 2, T: 2, S: 10, Hq: 2, Hkv: 1, D: 4, causal: true, window: 3, kvLen: 8 }],
  ['window 4, keys longer than queries (prefix)', { B: 1, T: 3, S: 9, Hq: 3, Hkv: 1, D: 2, causal: true, window: 4 }],
  ['softcap, not causal', { B: 2, T: 3, S: 5, Hq: 2, Hkv: 1, D: 4, causal: false, softcap: 0.7, spread: 2 }],
  ['softcap, causal, GQA', { B: 1, T: 6, S: 6, Hq: 4, Hkv: 2, D: 3, causal: true, softcap: 1.5, scale: 1.3, spread: 2 }],
  ['row lengths, not causal, GQA', { B: 3, T: 5, S: 5, Hq: 4, Hkv: 2, D: 3, causal: false, rows: [5, 2, 3] }],
  ['row lengths, fewer queries than keys', { B: 2, T: 3, S: 6, Hq: 2, Hkv: 2, D: 2, causal: false, rows: [1, 6] }],
  ['row lengths, causal', { B: 2, T: 6, S: 6, Hq: 2, Hkv: 1, D: 3, causal: true, rows: [4, 6] }],
  ['row lengths + causal + window + softcap, GQA', { B: 3, T: 7, S: 7, Hq: 4, Hkv: 2, D: 3, causal: true, window: 3, softcap: 0.9, rows: [7, 3, 5], spread: 1.5 }],
  ['window + softcap with kvLen, GQA', { B: 1, T: 3, S: 12, Hq: 4, Hkv: 1, D: 5, causal: true, window: 5, softcap: 0.8, kvLen: 9, spread: 1.5 }],
];

for (const [name, s] of cases) {
  test(`forward: ${name}`, async () => {
    const { g, ts, out, data } = buildGraph(leaves(s), body(s));
    const [got] = await runOnce(g, js64, ts, data, [out]);
    const want = reference(s, data[0] as Float64Array, data[1] as Float64Array, data[2] as Float64Array);
    const err = maxRelErr(got!, want);
    assert.ok(err <= FWD_TOL, `relative error ${err.toExponential(2)} > ${FWD_TOL}`);
  });
  // kvLen: no gradient (KV-cache decoding); window 1: the output is v itself, q and k get none.
  if (s.kvLen !== undefined || s.window === 1) continue;
  test(`gradient: ${name}`, async () => {
    const err = await gradCheck(leaves(s), body(s));
    assert.ok(err < GRAD_TOL, `relative gradient error ${err.toExponential(2)} ≥ ${GRAD_TOL}`);
  });
}

test('the reference masks differ: window, softcap and padding each change the output', async () => {
  const base: Spec = { B: 2, T: 6, S: 6, Hq: 2, Hkv: 1, D: 3, causal: true, spread: 2 };
  const run = async (s: Spec) => {
    const { g, ts, out, data } = buildGraph(leaves(s), body(s));
    return (await runOnce(g, js64, ts, data, [out]))[0]!;
  };
  const plain = await run(base);
  for (const extra of [{ window: 2 }, { softcap: 0.5 }, { rows: [6, 3] }] as Partial<Spec>[]) {
    assert.ok(maxRelErr(await run({ ...base, ...extra }), plain) > 1e-3, `${JSON.stringify(extra)} changed nothing`);
  }
});

test('a padded query row attends the valid keys of its row', async () => {
  // Not causal, row 0 has 2 valid keys: query 4 (padding) gets the softmax over keys 0 and 1, like query 0.
  const s: Spec = { B: 1, T: 5, S: 5, Hq: 1, Hkv: 1, D: 2, causal: false, rows: [2] };
  const { g, ts, out, data } = buildGraph(leaves(s), body(s));
  const [got] = await runOnce(g, js64, ts, data, [out]);
  const want = reference({ ...s, rows: undefined, S: 2 }, data[0] as Float64Array, (data[1] as Float64Array).subarray(0, 4), (data[2] as Float64Array).subarray(0, 4));
  assert.ok(maxRelErr(got!, want) <= FWD_TOL);
});

test('bad masking input is refused by name', async () => {
  const g = new Graph();
  const q = g.param('q', [2, 3, 2, 4]), k = g.param('k', [2, 3, 1, 4]), v = g.param('v', [2, 3, 1, 4]);
  const one = g.input('one', [1], 'i32'), two = g.input('two', [2], 'i32'), three = g.input('three', [3], 'i32');
  assert.throws(() => F.attention(q, k, v, { causal: false, window: 2 }), /window needs causal masking/);
  assert.throws(() => F.attention(q, k, v, { window: 0 }), /window must be a positive integer/);
  assert.throws(() => F.attention(q, k, v, { window: 1.5 }), /window must be a positive integer/);
  assert.throws(() => F.attention(q, k, v, { softcap: -1 }), /softcap must be a positive number/);
  assert.throws(() => F.attention(q, k, v, { causal: false, keyLengths: three }), /per-row key lengths must be i32 \[2\]/);
  assert.throws(() => F.attention(q, k, v, {}, two), /kvLen must be i32 \[1\]/);
  assert.throws(() => F.attention(q, k, v, { keyLengths: two }, one), /either kvLen .* or keyLengths/);
  // The KV-cache form has no gradient; the per-row form has one (for q, k, v).
  assert.throws(() => gradients(F.sum(F.attention(q, k, v, {}, one)), [q]), /no gradient/);
  const dq = gradients(F.sum(F.attention(q, k, v, { causal: false, keyLengths: two })), [q, k, v]);
  assert.ok(dq.get(q) && dq.get(k) && dq.get(v));
});

test('key lengths outside 1…S are refused when the kernel runs', async () => {
  for (const bad of [[0, 3], [3, 4], [-1, 2]]) {
    const s: Spec = { B: 2, T: 3, S: 3, Hq: 1, Hkv: 1, D: 2, causal: false, rows: bad };
    const { g, ts, out, data } = buildGraph(leaves(s), body(s));
    let err: Error | undefined;
    try { await runOnce(g, js64, ts, data, [out]); } catch (e) { err = e as Error; }
    assert.ok(err && /key length -?\d+ of batch row \d is outside 1…3/.test(err.message), `lengths ${bad}: ${err?.message}`);
  }
});

test('reference sanity: the window mask matches Hugging Face sliding_window on T = S', () => {
  // Mistral: key j visible to query i iff 0 ≤ i − j < sliding_window.
  const s: Spec = { B: 1, T: 6, S: 6, Hq: 1, Hkv: 1, D: 1, causal: true, window: 3 };
  for (let i = 0; i < 6; i++) for (let j = 0; j < 6; j++) assert.is(allowed(s, 0, i, j), i - j >= 0 && i - j < 3);
});

test.run();
