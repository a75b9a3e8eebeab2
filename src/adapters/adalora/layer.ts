/**
 * AdaLoRA (Zhang et al., "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning", ICLR 2023).
 * The update in SVD form (§3.1):  W = W⁽⁰⁾ + P·Λ·Q,  P [out, r] (lora_B), Λ = diag(λ) [r, 1] (lora_E),
 * Q [r, in] (lora_A); output h = W⁽⁰⁾x + s·P(λ ⊙ Qx) with s = loraAlpha / initR, as PEFT (its ranknum stays
 * initR when ranks are pruned, so pruning never rescales the kept triplets).
 * The orthogonality regulariser (§3.1):  R(P, Q) = ‖PᵀP − I‖²_F + ‖QQᵀ − I‖²_F, added as γ times its mean over
 * the regularised matrices (the authors' code and PEFT average over matrices, so γ does not grow with the
 * number of modules).
 */
import { type NamedTensor, tensorF32 } from '../../formats/checkpoint.js';
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import type { LinearContext } from '../../model/llama.js';
import { gaussian } from '../../util/random.js';
import type { BuildContext, InitContext, ModuleInfo, ParamStore } from '../types.js';
import type { AdaloraConfig } from './config.js';

export const adaloraKeys = (module: string) => ({ a: `${module}.lora_A`, e: `${module}.lora_E`, b: `${module}.lora_B` });

/** PEFT's scaling lora_alpha / (ranknum + 1e-5), kept so adapters trained in PEFT give the same outputs. */
export const adaloraScaling = (c: AdaloraConfig): number => c.loraAlpha / (c.initR + 1e-5);

/** A module's rank: initR, or the triplets its saved rank pattern keeps. */
export function moduleRank(c: AdaloraConfig, module: string): number {
  const p = c.rankPattern?.[adaloraKeys(module).e];
  return p ? p.filter(Boolean).length : c.initR;
}

/** PEFT's init: Λ = 0 (ΔW = 0 at the start), P and Q ~ N(0, 0.02²). */
export function createAdaloraParams(ctx: InitContext<AdaloraConfig>): ParamStore {
  const store: ParamStore = new Map();
  for (const m of ctx.modules) {
    const k = adaloraKeys(m.name), r = moduleRank(ctx.config, m.name);
    const normal = (n: number) => Float32Array.from({ length: n }, () => 0.02 * gaussian(ctx.random));
    store.set(k.a, { shape: [r, m.inFeatures], data: normal(r * m.inFeatures) });
    store.set(k.e, { shape: [r, 1], data: new Float32Array(r) });
    store.set(k.b, { shape: [m.outFeatures, r], data: normal(m.outFeatures * r) });
  }
  return store;
}

export function adaloraLinear(ctx: LinearContext, module: ModuleInfo, c: AdaloraConfig, b: BuildContext): Tensor {
  const k = adaloraKeys(module.name);
  const [A, E, B] = [b.param(k.a), b.param(k.e), b.param(k.b)];
  const x = b.training && c.loraDropout > 0 && b.seed ? F.dropout(ctx.x, b.seed, c.loraDropout, b.nextSite()) : ctx.x;
  return ctx.graph.within(`${module.name}.adalora`, () => {
    const qx = F.mul(F.matmul(x, A, { transB: true }), F.reshape(E, [A.shape[0]!]));
    return F.add(ctx.base(), F.scale(F.matmul(qx, B, { transB: true }), adaloraScaling(c)));
  });
}

/** ‖MᵀM − I‖²_F (or ‖MMᵀ − I‖²_F) expanded as ‖MᵀM‖²_F − 2‖M‖²_F + r: no identity constant is needed. */
function orthDeviation(m: Tensor, gramOfColumns: boolean): Tensor {
  const gram = gramOfColumns ? F.matmul(m, m, { transA: true }) : F.matmul(m, m, { transB: true });
  const r = gram.shape[0]!;
  return F.add(F.sub(F.sum(F.mul(gram, gram)), F.scale(F.sum(F.mul(m, m)), 2)), F.fill(m.graph, [], r));
}

export function adaloraRegularizer(modules: readonly ModuleInfo[], c: AdaloraConfig, b: BuildContext): Tensor | undefined {
  if (c.orthRegWeight === 0 || modules.length === 0) return undefined;
  let total: Tensor | undefined;
  for (const m of modules) {
    const k = adaloraKeys(m.name);
    const r = F.add(orthDeviation(b.param(k.b), true), orthDeviation(b.param(k.a), false));
    total = total ? F.add(total, r) : r;
  }
  return b.graph.within('adalora.orth_reg', () => F.scale(total!, c.orthRegWeight / (2 * modules.length)));
}

/** s·P·diag(λ)·Q as a dense [out, in] array. */
function adaloraDelta(params: ParamStore, module: ModuleInfo, c: AdaloraConfig): Float64Array {
  const k = adaloraKeys(module.name);
  const A = params.get(k.a)?.data, E = params.get(k.e)?.data, B = params.get(k.b)?.data;
  if (!A || !E || !B) throw new Error(`AdaLoRA parameters for ${module.name} are missing`);
  const { inFeatures: n, outFeatures: m } = module, r = E.length, s = adaloraScaling(c);
  const d = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let q = 0; q < r; q++) {
    const f = B[i * r + q]! * E[q]! * s;
    if (f !== 0) for (let j = 0; j < n; j++) d[i * n + j]! += f * A[q * n + j]!;
  }
  return d;
}

export function mergeAdalora(module: ModuleInfo, weight: NamedTensor, params: ParamStore, c: AdaloraConfig): Float32Array {
  const d = adaloraDelta(params, module, c);
  return Float32Array.from(tensorF32(weight), (w, i) => w + d[i]!);
}

/**
 * The adapter as PEFT saves it: with a rank pattern, each module keeps only its unpruned triplets (rows of
 * Q and Λ, columns of P), as PEFT's resize_state_dict_by_rank_pattern.
 */
export function resizeByRankPattern(params: ParamStore, modules: readonly ModuleInfo[], c: AdaloraConfig): ParamStore {
  if (!c.rankPattern) return params;
  const out: ParamStore = new Map();
  for (const m of modules) {
    const k = adaloraKeys(m.name);
    const keep = c.rankPattern[k.e];
    const A = params.get(k.a)!, E = params.get(k.e)!, B = params.get(k.b)!;
    const r = E.data.length;
    if (!keep || keep.length !== r) { for (const key of [k.a, k.e, k.b]) out.set(key, params.get(key)!); continue; }
    const idx = keep.flatMap((kept, i) => (kept ? [i] : []));
    const n = m.inFeatures, rk = idx.length;
    const a = new Float32Array(rk * n), e = new Float32Array(rk), bb = new Float32Array(m.outFeatures * rk);
    idx.forEach((q, t) => {
      a.set(A.data.subarray(q * n, q * n + n), t * n);
      e[t] = E.data[q]!;
      for (let i = 0; i < m.outFeatures; i++) bb[i * rk + t] = B.data[i * r + q]!;
    });
    out.set(k.a, { shape: [rk, n], data: a });
    out.set(k.e, { shape: [rk, 1], data: e });
    out.set(k.b, { shape: [m.outFeatures, rk], data: bb });
  }
  return out;
}
