/**
 * LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", 2021, eq. 3):
 *   h = W₀x + s·B·A·x,  A [r, in], B [out, r], s = alpha/r (rsLoRA: alpha/√r).
 * DoRA (Liu et al., "DoRA: Weight-Decomposed Low-Rank Adaptation", 2024, eq. 5):
 *   W' = m · (W₀ + s·B·A) / ‖W₀ + s·B·A‖ (row norms, the norm detached as in its §4.3).
 * PiSSA (Meng et al., 2024): A, B from the top-r singular triplets of W₀; the base becomes W₀ − s·B·A.
 */
import { type NamedTensor, tensorF32 } from '../../formats/checkpoint.js';
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import type { LinearContext } from '../../model/llama.js';
import { svd } from '../../linalg/svd.js';
import { gaussian } from '../../util/random.js';
import type { BuildContext, InitContext, ModuleInfo, ParamStore } from '../types.js';
import { type LoraConfig, loraScaling } from './config.js';

export const loraKeys = (module: string) => ({
  a: `${module}.lora_A.weight`,
  b: `${module}.lora_B.weight`,
  magnitude: `${module}.lora_magnitude_vector`,
  embA: `${module}.lora_embedding_A`,
  embB: `${module}.lora_embedding_B`,
});

/** ΔW = s·B·A as a dense [out, in] array. */
export function loraDelta(params: ParamStore, module: ModuleInfo, c: LoraConfig): Float64Array {
  const k = loraKeys(module.name);
  const A = params.get(k.a)?.data, B = params.get(k.b)?.data;
  if (!A || !B) throw new Error(`LoRA parameters for ${module.name} are missing`);
  const { inFeatures: n, outFeatures: m } = module, r = A.length / n, s = loraScaling(c);
  const d = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let q = 0; q < r; q++) {
    const b = B[i * r + q]! * s;
    if (b !== 0) for (let j = 0; j < n; j++) d[i * n + j]! += b * A[q * n + j]!;
  }
  return d;
}

export function createLoraParams(ctx: InitContext<LoraConfig>, onBaseChange?: (module: string, w: Float32Array) => void): ParamStore {
  const { config: c } = ctx;
  const store: ParamStore = new Map();
  for (const m of ctx.modules) {
    const k = loraKeys(m.name);
    const A = new Float32Array(c.r * m.inFeatures), B = new Float32Array(m.outFeatures * c.r);
    if (c.init === 'pissa') {
      const W = tensorF32(ctx.baseWeight(m.name)), s = loraScaling(c);
      const d = svd(W, m.outFeatures, m.inFeatures);
      if (c.r > d.k) throw new Error(`lora: rank ${c.r} exceeds ${m.name}'s smaller dimension ${d.k}`);
      for (let q = 0; q < c.r; q++) {
        const root = Math.sqrt(d.s[q]! / s);
        for (let j = 0; j < m.inFeatures; j++) A[q * m.inFeatures + j] = root * d.vt[q * m.inFeatures + j]!;
        for (let i = 0; i < m.outFeatures; i++) B[i * c.r + q] = root * d.u[i * d.k + q]!;
      }
      const residual = Float32Array.from(W);
      const tmp: ParamStore = new Map([[k.a, { shape: [c.r, m.inFeatures], data: A }], [k.b, { shape: [m.outFeatures, c.r], data: B }]]);
      const delta = loraDelta(tmp, m, c);
      for (let i = 0; i < residual.length; i++) residual[i]! -= delta[i]!;
      onBaseChange?.(m.name, residual);
    } else if (c.init === 'gaussian') {
      for (let i = 0; i < A.length; i++) A[i] = gaussian(ctx.random) / c.r;
    } else {
      // Kaiming-uniform with a = √5 on [r, in], as torch.nn.Linear's default: bound = 1/√in.
      const bound = 1 / Math.sqrt(m.inFeatures);
      for (let i = 0; i < A.length; i++) A[i] = (ctx.random() * 2 - 1) * bound;
    }
    if (m.kind === 'embedding') {
      // PEFT's embedding LoRA: A [r, V] zero, B [D, r] normal, ΔE = (B·A)ᵀ.
      const eA = new Float32Array(c.r * m.inFeatures), eB = new Float32Array(m.outFeatures * c.r);
      for (let i = 0; i < eB.length; i++) eB[i] = gaussian(ctx.random);
      store.set(k.embA, { shape: [c.r, m.inFeatures], data: eA });
      store.set(k.embB, { shape: [m.outFeatures, c.r], data: eB });
      continue;
    }
    store.set(k.a, { shape: [c.r, m.inFeatures], data: A });
    store.set(k.b, { shape: [m.outFeatures, c.r], data: B });
    if (c.useDora) {
      // m starts at ‖W₀ + ΔW‖ row norms so the first forward pass equals the base (+ LoRA) output.
      const W = tensorF32(ctx.baseWeight(m.name)), delta = loraDelta(store, m, c);
      const mag = new Float32Array(m.outFeatures);
      for (let i = 0; i < m.outFeatures; i++) {
        let s2 = 0;
        for (let j = 0; j < m.inFeatures; j++) s2 += (W[i * m.inFeatures + j]! + delta[i * m.inFeatures + j]!) ** 2;
        mag[i] = Math.sqrt(s2);
      }
      store.set(k.magnitude, { shape: [m.outFeatures], data: mag });
    }
  }
  return store;
}

/** The adapted linear layer's output. x [..., in] → [..., out]. */
export function loraLinear(ctx: LinearContext, module: ModuleInfo, c: LoraConfig, b: BuildContext): Tensor {
  const k = loraKeys(module.name), s = loraScaling(c);
  const A = module.kind === 'linear' ? b.param(k.a) : undefined, B = module.kind === 'linear' ? b.param(k.b) : undefined;
  const x = b.training && c.dropout > 0 && b.seed ? F.dropout(ctx.x, b.seed, c.dropout, b.nextSite()) : ctx.x;
  return ctx.graph.within(`${module.name}.lora`, () => {
    if (module.kind === 'embedding') {
      // ΔE = s·(B·A)ᵀ: row id of ΔE is s·B·A[:, id].
      const rows = F.embedding(F.transpose(b.param(k.embA), [1, 0]), ctx.ids!);
      return F.add(ctx.base(), F.scale(F.matmul(rows, b.param(k.embB), { transB: true }), s));
    }
    if (!c.useDora) {
      const delta = F.scale(F.matmul(F.matmul(x, A!, { transB: true }), B!, { transB: true }), s);
      return F.add(ctx.base(), delta);
    }
    // DoRA: y = (m / ‖W₀ + s·B·A‖_rows) ⊙ (W₀x + s·B·A·x); the norm carries no gradient (§4.3).
    const merged = F.add(F.dequantize(ctx.weight), F.scale(F.matmul(B!, A!), s));
    const norm = F.stopGradient(F.sqrt(F.sum(F.mul(merged, merged), [1])));
    const ratio = F.div(b.param(k.magnitude), norm);
    const lora = F.scale(F.matmul(F.matmul(x, A!, { transB: true }), B!, { transB: true }), s);
    const unbiased = ctx.bias ? F.sub(ctx.base(), ctx.bias) : ctx.base();
    const y = F.mul(F.add(unbiased, lora), ratio);
    return ctx.bias ? F.add(y, ctx.bias) : y;
  });
}

/** Merged weight W₀ + ΔW (DoRA: m · (W₀ + ΔW)/‖W₀ + ΔW‖). */
export function mergeLora(module: ModuleInfo, weight: NamedTensor, params: ParamStore, c: LoraConfig): Float32Array {
  const delta = loraDelta(params, module, c), W = tensorF32(weight), out = new Float32Array(W.length);
  const n = module.inFeatures;
  for (let i = 0; i < module.outFeatures; i++) {
    let s2 = 0;
    for (let j = 0; j < n; j++) s2 += (W[i * n + j]! + delta[i * n + j]!) ** 2;
    const ratio = c.useDora ? params.get(loraKeys(module.name).magnitude)!.data[i]! / Math.sqrt(s2) : 1;
    for (let j = 0; j < n; j++) out[i * n + j] = (W[i * n + j]! + delta[i * n + j]!) * ratio;
  }
  return out;
}
