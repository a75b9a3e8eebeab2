/**
 * Hydra (Kim et al., "Hydra: Multi-head Low-rank Adaptation for Parameter Efficient Fine-tuning", 2023):
 * a parallel low-rank branch on the layer's input and a sequential one on its output, together,
 *   h = W₀x + s·B_p A_p x + s·B_s A_s (W₀x)
 * so the sequential branch is a learned linear combination of the pre-trained features. Both branches
 * start at zero (A ~ N(0, 0.02²), B = 0, as the authors' "lora" init), and the whole is linear in x:
 *   W = W₀ + s·B_p A_p + s·B_s A_s W₀,  b = b₀ + s·B_s A_s b₀   (merge).
 */
import { type NamedTensor, tensorF32 } from '../../formats/checkpoint.js';
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import type { LinearContext } from '../../model/llama.js';
import { gaussian } from '../../util/random.js';
import type { BuildContext, InitContext, ModuleInfo, ParamStore } from '../types.js';
import type { HydraConfig } from './config.js';

export const hydraKeys = (module: string) => ({
  parA: `${module}.hydra_par_A.weight`, parB: `${module}.hydra_par_B.weight`,
  seqA: `${module}.hydra_seq_A.weight`, seqB: `${module}.hydra_seq_B.weight`,
});

export function createHydraParams(ctx: InitContext<HydraConfig>): ParamStore {
  const store: ParamStore = new Map();
  const r = ctx.config.r;
  const normal = (n: number) => Float32Array.from({ length: n }, () => 0.02 * gaussian(ctx.random));
  for (const m of ctx.modules) {
    const k = hydraKeys(m.name);
    store.set(k.parA, { shape: [r, m.inFeatures], data: normal(r * m.inFeatures) });
    store.set(k.parB, { shape: [m.outFeatures, r], data: new Float32Array(m.outFeatures * r) });
    store.set(k.seqA, { shape: [r, m.outFeatures], data: normal(r * m.outFeatures) });
    store.set(k.seqB, { shape: [m.outFeatures, r], data: new Float32Array(m.outFeatures * r) });
  }
  return store;
}

export function hydraLinear(ctx: LinearContext, module: ModuleInfo, c: HydraConfig, b: BuildContext): Tensor {
  const k = hydraKeys(module.name);
  const x = b.training && c.branchDropout > 0 && b.seed ? F.dropout(ctx.x, b.seed, c.branchDropout, b.nextSite()) : ctx.x;
  return ctx.graph.within(`${module.name}.hydra`, () => {
    const y = ctx.base();
    const lowRank = (input: Tensor, A: string, B: string) => F.matmul(F.matmul(input, b.param(A), { transB: true }), b.param(B), { transB: true });
    return F.add(y, F.scale(F.add(lowRank(x, k.parA, k.parB), lowRank(y, k.seqA, k.seqB)), c.scale));
  });
}

/** B·A for a [rows, r] B and an [r, cols] A, float64. */
function product(B: Float32Array, A: Float32Array, rows: number, r: number, cols: number): Float64Array {
  const d = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let q = 0; q < r; q++) {
    const bq = B[i * r + q]!;
    if (bq !== 0) for (let j = 0; j < cols; j++) d[i * cols + j]! += bq * A[q * cols + j]!;
  }
  return d;
}

function branches(params: ParamStore, module: ModuleInfo, c: HydraConfig): { par: Float64Array; seq: Float64Array } {
  const k = hydraKeys(module.name);
  const get = (key: string) => { const t = params.get(key); if (!t) throw new Error(`Hydra parameters for ${module.name} are missing`); return t.data; };
  const { inFeatures: n, outFeatures: m } = module;
  return { par: product(get(k.parB), get(k.parA), m, c.r, n), seq: product(get(k.seqB), get(k.seqA), m, c.r, m) };
}

export function mergeHydra(module: ModuleInfo, weight: NamedTensor, params: ParamStore, c: HydraConfig): Float32Array {
  const { par, seq } = branches(params, module, c), W = tensorF32(weight), n = module.inFeatures, m = module.outFeatures;
  const out = new Float32Array(W.length);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let o = 0; o < m; o++) s += seq[i * m + o]! * W[o * n + j]!;
    out[i * n + j] = W[i * n + j]! + c.scale * (par[i * n + j]! + s);
  }
  return out;
}

/** The sequential branch also maps the bias: b + s·B_s A_s b. Without a bias nothing changes. */
export function mergeHydraBias(module: ModuleInfo, bias: NamedTensor | undefined, params: ParamStore, c: HydraConfig): Float32Array | undefined {
  if (!bias) return undefined;
  const { seq } = branches(params, module, c), m = module.outFeatures;
  const b = tensorF32(bias);
  return Float32Array.from(b, (v, i) => {
    let s = 0;
    for (let o = 0; o < m; o++) s += seq[i * m + o]! * b[o]!;
    return v + c.scale * s;
  });
}
