/**
 * LaMDA (Azizi, Kundu, Pedram, "LaMDA: Large Model Fine-Tuning via Spectrally Decomposed Low-Dimensional
 * Adaptation", EMNLP Findings 2024):  Y = XW + α·X·A·S·B  (the paper's row-vector form), here per module
 *   h = W x + α·B·S·A·x,  A [r, in] = PMA (frozen), S [r, r] = the low-dimensional adapter (trained),
 *   B [out, r] = PMB (trained, then frozen one singular direction at a time, see controller.ts).
 * Spectral init: A = V_rᵀ and B = U_r from W = UΣVᵀ (the r leading singular directions), S = 0, so the
 * path starts at zero; B's column j belongs to σ_j. The merge is W + α·B·S·A.
 */
import { type NamedTensor, tensorF32 } from '../../formats/checkpoint.js';
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import { type Svd, svd } from '../../linalg/svd.js';
import type { LinearContext } from '../../model/llama.js';
import type { BuildContext, InitContext, ModuleInfo, ParamStore } from '../types.js';
import type { LamdaConfig } from './config.js';
import { allocateRanks } from './spectrum.js';

export const lamdaKeys = (module: string) => ({ a: `${module}.lamda_A.weight`, s: `${module}.lamda_S.weight`, b: `${module}.lamda_B.weight` });

/** PMA never trains. */
export const isPma = (key: string): boolean => key.endsWith('.lamda_A.weight');

export function moduleRank(c: LamdaConfig, module: string): number {
  return c.rankPattern?.[module] ?? c.r;
}

/** Fresh parameters; with adaptiveRank (LaMDA++) and no saved pattern, the ranks are allocated here and kept in the config. */
export function createLamdaParams(ctx: InitContext<LamdaConfig>): ParamStore {
  const c = ctx.config;
  const needSvd = c.initMethod === 'svd' || (c.adaptiveRank && !c.rankPattern);
  const svds = new Map<string, Svd>();
  if (needSvd) for (const m of ctx.modules) svds.set(m.name, svd(tensorF32(ctx.baseWeight(m.name)), m.outFeatures, m.inFeatures));
  if (c.adaptiveRank && !c.rankPattern) {
    const ranks = allocateRanks(ctx.modules.map((m) => svds.get(m.name)!.s), c.r * ctx.modules.length);
    c.rankPattern = Object.fromEntries(ctx.modules.map((m, i) => [m.name, ranks[i]!]));
  }
  const uniform = (n: number, fanIn: number) => Float32Array.from({ length: n }, () => (ctx.random() * 2 - 1) / Math.sqrt(fanIn));
  const store: ParamStore = new Map();
  for (const m of ctx.modules) {
    const k = lamdaKeys(m.name), r = moduleRank(c, m.name), n = m.inFeatures, out = m.outFeatures;
    let A: Float32Array, S: Float32Array, B: Float32Array;
    if (c.initMethod === 'svd') {
      const d = svds.get(m.name)!;
      if (r > d.k) throw new Error(`lamda: rank ${r} exceeds ${m.name}'s smaller dimension ${d.k}`);
      A = Float32Array.from(d.vt.subarray(0, r * n));
      B = Float32Array.from({ length: out * r }, (_, i) => d.u[Math.floor(i / r) * d.k + (i % r)]!);
      S = new Float32Array(r * r);
    } else {
      // Kaiming-uniform (a = √5) as torch.nn.Linear, for the fixed PMA and the square S; PMB starts at zero.
      A = uniform(r * n, n);
      S = uniform(r * r, r);
      B = new Float32Array(out * r);
    }
    store.set(k.a, { shape: [r, n], data: A });
    store.set(k.s, { shape: [r, r], data: S });
    store.set(k.b, { shape: [out, r], data: B });
  }
  return store;
}

export function lamdaLinear(ctx: LinearContext, module: ModuleInfo, c: LamdaConfig, b: BuildContext): Tensor {
  const k = lamdaKeys(module.name);
  return ctx.graph.within(`${module.name}.lamda`, () => {
    const low = F.matmul(F.matmul(ctx.x, b.param(k.a), { transB: true }), b.param(k.s), { transB: true });
    return F.add(ctx.base(), F.scale(F.matmul(low, b.param(k.b), { transB: true }), c.scale));
  });
}

export function mergeLamda(module: ModuleInfo, weight: NamedTensor, params: ParamStore, c: LamdaConfig): Float32Array {
  const k = lamdaKeys(module.name);
  const A = params.get(k.a)?.data, S = params.get(k.s)?.data, B = params.get(k.b)?.data;
  if (!A || !S || !B) throw new Error(`LaMDA parameters for ${module.name} are missing`);
  const r = Math.round(Math.sqrt(S.length)), n = module.inFeatures, out = module.outFeatures;
  // BS [out, r], then (BS)·A.
  const bs = new Float64Array(out * r);
  for (let i = 0; i < out; i++) for (let p = 0; p < r; p++) for (let q = 0; q < r; q++) bs[i * r + q]! += B[i * r + p]! * S[p * r + q]!;
  const W = tensorF32(weight), res = new Float32Array(W.length);
  for (let i = 0; i < out; i++) for (let j = 0; j < n; j++) {
    let d = 0;
    for (let q = 0; q < r; q++) d += bs[i * r + q]! * A[q * n + j]!;
    res[i * n + j] = W[i * n + j]! + c.scale * d;
  }
  return res;
}
