/**
 * TriAdaptLoRA (Liang, Wang, Zeng, "TriAdaptLoRA: Brain-Inspired Triangular Adaptive Low-Rank Adaptation for
 * Parameter-Efficient Fine-Tuning", 2025), as the authors' released code computes it:
 *   ΔW = α / (r + 10⁻⁵) · B · C · A,   A [r, in], B [out, r], C [r, r], r the module's current rank
 * (the guard is AdaLoRA's `ranknum + 1e-5`, on whose code the reference builds),
 * where the transformation matrix C is split into a lower-triangular part (the rows each growth adds, up to
 * and including the diagonal) and an upper-triangular part (the columns it adds, above the diagonal):
 * C = tril(C_lower) + triu(C_upper, 1), so every entry of C is one parameter and growing the rank by Δ adds
 * Δ new rows to the lower part and Δ new columns to the upper part.
 * Ranks only grow, so tensors are allocated at maxRank and the active block is selected by masks
 * (`tri_mask_lower`, `tri_mask_upper` [R, R] carrying the scaling α/(r + 10⁻⁵), `tri_rank_mask` [R]); inactive
 * entries get no gradient. Init: A ~ N(0, 0.02²), B = 0, C = I, so ΔW = 0 and B trains from the first step;
 * a newly grown direction also starts with B's column at zero.
 */
import { type NamedTensor, tensorF32 } from '../../formats/checkpoint.js';
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import type { LinearContext } from '../../model/llama.js';
import { gaussian } from '../../util/random.js';
import type { BuildContext, InitContext, ModuleInfo, ParamStore } from '../types.js';
import type { TriAdaptConfig } from './config.js';

export const triKeys = (module: string) => ({
  a: `${module}.lora_A`, b: `${module}.lora_B`, lower: `${module}.lora_C_lower`, upper: `${module}.lora_C_upper`,
  maskLower: `${module}.tri_mask_lower`, maskUpper: `${module}.tri_mask_upper`, maskRank: `${module}.tri_rank_mask`,
});

/** The masks are derived state: they never train. */
export const isMask = (key: string): boolean => /\.tri_(mask_lower|mask_upper|rank_mask)$/.test(key);

export const triScaling = (c: TriAdaptConfig, r: number): number => c.loraAlpha / (r + 1e-5);

/** Masks for rank r of R allocated: the lower triangle (with the diagonal) and the strict upper one of the active block. */
export function triMasks(r: number, R: number, scale: number): { lower: Float32Array; upper: Float32Array; rank: Float32Array } {
  const lower = new Float32Array(R * R), upper = new Float32Array(R * R);
  for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) (j <= i ? lower : upper)[i * R + j] = scale;
  return { lower, upper, rank: Float32Array.from({ length: R }, (_, i) => (i < r ? 1 : 0)) };
}

/** Allocated size: maxRank while training (capped by the module), or the saved rank of a loaded adapter. */
export function allocated(c: TriAdaptConfig, m: ModuleInfo): number {
  return c.rankPattern?.[m.name] ?? Math.min(c.maxRank, m.inFeatures, m.outFeatures);
}

export function createTriAdaptParams(ctx: InitContext<TriAdaptConfig>): ParamStore {
  const c = ctx.config, store: ParamStore = new Map();
  for (const m of ctx.modules) {
    const k = triKeys(m.name), R = allocated(c, m), r = c.rankPattern?.[m.name] ?? Math.min(c.initRank, R);
    const masks = triMasks(r, R, triScaling(c, r));
    store.set(k.a, { shape: [R, m.inFeatures], data: Float32Array.from({ length: R * m.inFeatures }, () => 0.02 * gaussian(ctx.random)) });
    store.set(k.b, { shape: [m.outFeatures, R], data: new Float32Array(m.outFeatures * R) });
    store.set(k.lower, { shape: [R, R], data: Float32Array.from({ length: R * R }, (_, i) => (i % (R + 1) === 0 ? 1 : 0)) });
    store.set(k.upper, { shape: [R, R], data: new Float32Array(R * R) });
    store.set(k.maskLower, { shape: [R, R], data: masks.lower });
    store.set(k.maskUpper, { shape: [R, R], data: masks.upper });
    store.set(k.maskRank, { shape: [R], data: masks.rank });
  }
  return store;
}

/** The scaled, masked C [R, R]. */
function effectiveC(b: BuildContext, k: ReturnType<typeof triKeys>): Tensor {
  return F.add(F.mul(b.param(k.lower), b.param(k.maskLower)), F.mul(b.param(k.upper), b.param(k.maskUpper)));
}

export function triAdaptLinear(ctx: LinearContext, module: ModuleInfo, c: TriAdaptConfig, b: BuildContext): Tensor {
  const k = triKeys(module.name);
  const x = b.training && c.loraDropout > 0 && b.seed ? F.dropout(ctx.x, b.seed, c.loraDropout, b.nextSite()) : ctx.x;
  return ctx.graph.within(`${module.name}.triadaptlora`, () => {
    const h = F.matmul(F.matmul(x, b.param(k.a), { transB: true }), effectiveC(b, k), { transB: true });
    return F.add(ctx.base(), F.matmul(h, b.param(k.b), { transB: true }));
  });
}

/** ‖M_m M_mᵀ − I_r‖²_F over the active rows of M (rows masked by m), as ‖G‖² − 2‖M_m‖² + r. */
function activeDeviation(rows: Tensor, m: Tensor, gramOfRows: boolean): Tensor {
  const masked = F.mul(rows, gramOfRows ? F.reshape(m, [-1, 1]) : F.reshape(m, [1, -1]));
  const gram = gramOfRows ? F.matmul(masked, masked, { transB: true }) : F.matmul(masked, masked, { transA: true });
  return F.add(F.sub(F.sum(F.mul(gram, gram)), F.scale(F.sum(F.mul(masked, masked)), 2)), F.sum(m));
}

/** The authors' orthogonality regulariser on the active A and B, averaged over matrices (squared norms, as AdaLoRA's). */
export function triAdaptRegularizer(modules: readonly ModuleInfo[], c: TriAdaptConfig, b: BuildContext): Tensor | undefined {
  if (c.orthRegWeight === 0 || modules.length === 0) return undefined;
  let total: Tensor | undefined;
  for (const m of modules) {
    const k = triKeys(m.name), mask = b.param(k.maskRank);
    const r = F.add(activeDeviation(b.param(k.a), mask, true), activeDeviation(b.param(k.b), mask, false));
    total = total ? F.add(total, r) : r;
  }
  return b.graph.within('triadaptlora.orth_reg', () => F.scale(total!, c.orthRegWeight / (2 * modules.length)));
}

/** ΔW = B·C_eff·A, dense [out, in]. */
function triDelta(params: ParamStore, module: ModuleInfo): Float64Array {
  const k = triKeys(module.name), get = (key: string) => { const t = params.get(key); if (!t) throw new Error(`TriAdaptLoRA parameters for ${module.name} are missing`); return t.data; };
  const [A, B, L, U, ML, MU] = [get(k.a), get(k.b), get(k.lower), get(k.upper), get(k.maskLower), get(k.maskUpper)];
  const R = Math.round(Math.sqrt(L.length)), n = module.inFeatures, out = module.outFeatures;
  const ca = new Float64Array(R * n);
  for (let p = 0; p < R; p++) for (let q = 0; q < R; q++) {
    const c = L[p * R + q]! * ML[p * R + q]! + U[p * R + q]! * MU[p * R + q]!;
    if (c !== 0) for (let j = 0; j < n; j++) ca[p * n + j]! += c * A[q * n + j]!;
  }
  const d = new Float64Array(out * n);
  for (let i = 0; i < out; i++) for (let p = 0; p < R; p++) {
    const bp = B[i * R + p]!;
    if (bp !== 0) for (let j = 0; j < n; j++) d[i * n + j]! += bp * ca[p * n + j]!;
  }
  return d;
}

export function mergeTriAdapt(module: ModuleInfo, weight: NamedTensor, params: ParamStore): Float32Array {
  const d = triDelta(params, module);
  return Float32Array.from(tensorF32(weight), (w, i) => w + d[i]!);
}

/** The active rank of a module, from its rank mask. */
export function activeRank(params: ParamStore, module: string): number {
  return params.get(triKeys(module).maskRank)!.data.reduce((a, v) => a + v, 0);
}

/** Each module cut to its active rank (what is saved), with the ranks as the config's rank pattern. */
export function cutToActive(params: ParamStore, modules: readonly ModuleInfo[], c: TriAdaptConfig): { params: ParamStore; config: TriAdaptConfig } {
  const out: ParamStore = new Map(), pattern: Record<string, number> = {};
  for (const m of modules) {
    const k = triKeys(m.name), r = activeRank(params, m.name), R = params.get(k.maskRank)!.data.length;
    pattern[m.name] = r;
    const square = (key: string) => Float32Array.from({ length: r * r }, (_, i) => params.get(key)!.data[Math.floor(i / r) * R + (i % r)]!);
    out.set(k.a, { shape: [r, m.inFeatures], data: params.get(k.a)!.data.slice(0, r * m.inFeatures) });
    out.set(k.b, { shape: [m.outFeatures, r], data: Float32Array.from({ length: m.outFeatures * r }, (_, i) => params.get(k.b)!.data[Math.floor(i / r) * R + (i % r)]!) });
    for (const key of [k.lower, k.upper, k.maskLower, k.maskUpper]) out.set(key, { shape: [r, r], data: square(key) });
    out.set(k.maskRank, { shape: [r], data: new Float32Array(r).fill(1) });
  }
  return { params: out, config: { ...c, rankPattern: pattern } };
}
