// Attention's explicit mask (i32 [T, S]; tree-shaped drafts verified in one pass): the js kernel against a
// float64 softmax written here from the definition (1e-6 relative), then wasm (1 and 2 threads, 1e-5) and
// webgpu (2e-4, its DEFAULT_TOL) against js with the comparison of test/webgpu/op-cases.ts. Masks are random
// with every query keeping at least one key, plus a row that keeps none (zeros out, as with no key); cases
// combine the mask with kvLen, causal masking and grouped-query heads, and the large ones cross wasm's
// 64-query blocks and webgpu's tiles. A mask that were ignored moves the outputs by the order of the values.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { createWasmBackend } from '../../src/backends/wasm/index.js';
import { createWebgpuBackend } from '../../src/backends/webgpu/index.js';
import * as F from '../../src/graph/api.js';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { Session } from '../../src/scheduler/session.js';
import { seededRandom } from '../../src/util/random.js';
import { checkCase, type OpCase } from '../webgpu/op-cases.js';

const L = (name: string, shape: number[], scale = 1) => ({ name, shape, scale });
const i32 = (name: string, shape: number[], data: number[]) => ({ name, shape, dtype: 'i32' as const, kind: 'input' as const, data });

/** A random 0/1 mask [T, S], each row keeping at least one key below `limit(t)` (the keys its other rules allow); `empty` rows keep none. */
function randomMask(T: number, S: number, seed: number, limit: (t: number) => number = () => S, empty: number[] = []): number[] {
  const r = seededRandom(seed), m = new Array<number>(T * S).fill(0);
  for (let t = 0; t < T; t++) {
    if (empty.includes(t)) continue;
    const hi = limit(t);
    for (let j = 0; j < hi; j++) m[t * S + j] = r() < 0.5 ? 1 : 0;
    m[t * S + Math.floor(r() * hi)] = 1;
  }
  return m;
}

function qkv(B: number, T: number, S: number, Hq: number, Hkv: number, D: number) {
  return [L('q', [B, T, Hq, D]), L('k', [B, S, Hkv, D]), L('v', [B, S, Hkv, D])];
}
const masked = (o: F.AttentionOptions, kvLen: boolean) => ([q, k, v, a, b]: Tensor[]) =>
  (kvLen ? F.attention(q!, k!, v!, { ...o, mask: b! }, a!) : F.attention(q!, k!, v!, { ...o, mask: a! }));

const cases: OpCase[] = [
  { name: 'mask, not causal, GQA', leaves: [...qkv(2, 5, 7, 4, 2, 3), i32('mask', [5, 7], randomMask(5, 7, 1, () => 7, [3]))], body: masked({ causal: false }, false), grad: false },
  { name: 'mask + causal', leaves: [...qkv(1, 6, 6, 2, 1, 4), i32('mask', [6, 6], randomMask(6, 6, 2, (t) => t + 1))], body: masked({}, false), grad: false },
  {
    name: 'mask + kvLen 9 of 12, not causal (a draft tree after a cached prefix)',
    leaves: [...qkv(1, 4, 12, 2, 2, 4), i32('len', [1], [9]), i32('mask', [4, 12], randomMask(4, 12, 3, () => 9))], body: masked({ causal: false }, true), grad: false,
  },
  {
    name: 'large: mask over 90 keys, 70 queries, head 16',
    leaves: [...qkv(1, 70, 90, 2, 1, 16), i32('mask', [70, 90], randomMask(70, 90, 4))], body: masked({ causal: false }, false), grad: false,
  },
];

const js = createJsBackend();

test('js: masked attention equals a float64 softmax over the keys the mask shows', async () => {
  const B = 2, T = 5, S = 8, Hq = 4, Hkv = 2, D = 3, scale = 0.7;
  const r = seededRandom(9);
  const rand = (n: number) => Float32Array.from({ length: n }, () => r() * 2 - 1);
  const Q = rand(B * T * Hq * D), K = rand(B * S * Hkv * D), V = rand(B * S * Hkv * D);
  const M = Int32Array.from(randomMask(T, S, 5, () => 6, [2]));
  const g = new Graph();
  const [q, k, v] = [g.input('q', [B, T, Hq, D]), g.input('k', [B, S, Hkv, D]), g.input('v', [B, S, Hkv, D])];
  const len = g.input('len', [1], 'i32'), mask = g.input('mask', [T, S], 'i32');
  const out = F.attention(q, k, v, { causal: false, scale, mask }, len);
  g.markOutput(out);
  const s = await Session.create(g, js);
  s.set(q, Q); s.set(k, K); s.set(v, V); s.set(len, Int32Array.of(6)); s.set(mask, M);
  await s.run();
  const got = await s.get(out);
  let worst = 0;
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < Hq; h++) {
    const kh = Math.floor(h / (Hq / Hkv));
    const keys = [...Array(6).keys()].filter((j) => M[t * S + j] !== 0);
    const sc = keys.map((j) => { let d = 0; for (let e = 0; e < D; e++) d += Q[((b * T + t) * Hq + h) * D + e]! * K[((b * S + j) * Hkv + kh) * D + e]!; return d * scale; });
    const mx = Math.max(...sc), w = sc.map((x) => Math.exp(x - mx)), z = w.reduce((a, x) => a + x, 0);
    for (let e = 0; e < D; e++) {
      const want = keys.length ? keys.reduce((a, j, i) => a + (w[i]! / z) * V[((b * S + j) * Hkv + kh) * D + e]!, 0) : 0;
      worst = Math.max(worst, Math.abs(got[((b * T + t) * Hq + h) * D + e]! - want));
    }
  }
  assert.ok(worst < 1e-6, `max |js − float64| = ${worst}`);
  s.dispose();
});

test('a mask of the wrong shape, and a gradient through a masked attention, are refused by name', () => {
  const g = new Graph();
  const q = g.input('q', [1, 2, 1, 2]), k = g.input('k', [1, 3, 1, 2]);
  assert.throws(() => F.attention(q, k, k, { causal: false, mask: g.input('m', [3, 2], 'i32') }), /attention mask must be i32 \[2, 3\]/);
  assert.throws(() => F.attention(q, k, k, { causal: false, mask: g.input('m2', [2, 3]) }), /attention mask must be i32 \[2, 3\] \(queries × keys\), got f32/);
  const g2 = new Graph();
  const p = g2.param('p', [1, 2, 1, 2]), kk = g2.input('k', [1, 3, 1, 2]);
  const loss = F.sum(F.attention(p, kk, kk, { causal: false, mask: g2.input('m', [2, 3], 'i32') }));
  assert.throws(() => gradients(loss, [p]), /attention with an explicit mask \(draft verification\) has no gradient/);
});

async function against(backend: Backend, tol: number, label: string): Promise<void> {
  for (const c of cases) {
    const r = await checkCase(backend, js, { ...c, tol });
    assert.ok(r.ok, `${label} ${c.name}: ${r.detail}`);
  }
}

test('wasm matches js (1 thread and 2 threads)', async () => {
  for (const threads of [1, 2]) {
    const wasm = await createWasmBackend({ threads });
    try { await against(wasm, 1e-5, `wasm ${threads} thread(s)`); } finally { wasm.dispose(); }
  }
});

test('webgpu matches js', async () => {
  const gpu = await createWebgpuBackend();
  try { await against(gpu, 2e-4, 'webgpu'); } finally { gpu.dispose(); }
});

test.run();
