// Attention's sliding window, logit soft-cap and per-row key lengths on wasm and webgpu against the js
// backend (checked itself against a float64 reference in test/core/attention-masks.test.ts), forward and
// backward (the gradients of Σ out ∘ w for every f32 leaf), with the comparison of test/webgpu/op-cases.ts:
// max |got − ref| ≤ tol · max |ref| per tensor. wasm: tol 1e-5 (float32 lanes against float64 sums; the
// existing op tests see < 1e-6); webgpu: 2e-4 (its DEFAULT_TOL: f32 sums in another order, WGSL exp/tanh
// not correctly rounded). A wrong mask bound gives errors of the order of the values.
// The large cases cross wasm's 64-query blocks and webgpu's tiles with windows that start mid-block.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { createWasmBackend } from '../../src/backends/wasm/index.js';
import { createWebgpuBackend } from '../../src/backends/webgpu/index.js';
import * as F from '../../src/graph/api.js';
import type { Tensor } from '../../src/graph/graph.js';
import { checkCase, type OpCase } from '../webgpu/op-cases.js';

const L = (name: string, shape: number[], scale = 1) => ({ name, shape, scale });
const ids = (name: string, data: number[]) => ({ name, shape: [data.length], dtype: 'i32' as const, kind: 'input' as const, data });

function qkv(B: number, T: number, S: number, Hq: number, Hkv: number, D: number, spread = 1) {
  return [L('q', [B, T, Hq, D], spread), L('k', [B, S, Hkv, D], spread), L('v', [B, S, Hkv, D])];
}
const attn = (o: F.AttentionOptions, lengths: 'kvLen' | 'rows' | 'none' = 'none') => ([q, k, v, len]: Tensor[]) =>
  F.attention(q!, k!, v!, { ...o, ...(lengths === 'rows' ? { keyLengths: len! } : {}) }, lengths === 'kvLen' ? len : undefined);

const cases: OpCase[] = [
  { name: 'window 3, GQA', leaves: qkv(2, 7, 7, 4, 2, 3), body: attn({ window: 3 }) },
  { name: 'window 1', leaves: qkv(1, 5, 5, 2, 1, 4), body: attn({ window: 1 }) },
  { name: 'window 4, keys longer than queries', leaves: qkv(1, 3, 9, 3, 1, 2), body: attn({ window: 4 }) },
  { name: 'window 5 with kvLen 9 of 12 (forward)', leaves: [...qkv(2, 3, 12, 2, 1, 4), ids('len', [9])], body: attn({ window: 5 }, 'kvLen'), grad: false },
  { name: 'softcap, not causal', leaves: qkv(2, 3, 5, 2, 1, 4, 2), body: attn({ causal: false, softcap: 0.7 }) },
  { name: 'softcap, causal, GQA', leaves: qkv(1, 6, 6, 4, 2, 3, 2), body: attn({ softcap: 1.5, scale: 1.3 }) },
  { name: 'row lengths, not causal, GQA', leaves: [...qkv(3, 5, 5, 4, 2, 3), ids('len', [5, 2, 3])], body: attn({ causal: false }, 'rows') },
  { name: 'row lengths, fewer queries than keys', leaves: [...qkv(2, 3, 6, 2, 2, 2), ids('len', [1, 6])], body: attn({ causal: false }, 'rows') },
  { name: 'row lengths + causal + window + softcap', leaves: [...qkv(3, 7, 7, 4, 2, 3, 1.5), ids('len', [7, 3, 5])], body: attn({ window: 3, softcap: 0.9 }, 'rows') },
  {
    name: 'large: window 20 + softcap, 80 queries, head 16',
    leaves: qkv(2, 80, 80, 2, 1, 16), body: attn({ window: 20, softcap: 5 }),
  },
  {
    name: 'large: row lengths 80 and 37, not causal, head 16',
    leaves: [...qkv(2, 80, 80, 2, 1, 16), ids('len', [80, 37])], body: attn({ causal: false }, 'rows'),
  },
  {
    name: 'large: window 9 with kvLen 70 of 90, 20 queries (forward)',
    leaves: [...qkv(1, 20, 90, 2, 2, 8), ids('len', [70])], body: attn({ window: 9 }, 'kvLen'), grad: false,
  },
];

const js = createJsBackend();

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

test('wasm refuses key lengths outside 1…S', async () => {
  const wasm = await createWasmBackend({ threads: 1 });
  try {
    let err: Error | undefined;
    try {
      await checkCase(wasm, js, { name: 'bad', leaves: [...qkv(2, 3, 3, 1, 1, 2), ids('len', [3, 0])], body: attn({ causal: false }, 'rows') });
    } catch (e) { err = e as Error; }
    assert.ok(err && /key length 0 of batch row 1 is outside 1…3/.test(err.message), err?.message);
  } finally { wasm.dispose(); }
});

test('webgpu matches js', async () => {
  const gpu = await createWebgpuBackend();
  try { await against(gpu, 2e-4, 'webgpu'); } finally { gpu.dispose(); }
});

test.run();
