/**
 * LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", 2021, eq. 3):
 *   h = W₀x + s·B·A·x,  A [r, in], B [out, r], s = alpha/r (rsLoRA: alpha/√r).
 * DoRA (Liu et al., "DoRA: Weight-Decomposed Low-Rank Adaptation", 2024, eq. 5):
 *   W' = m · (W₀ + s·B·A) / ‖W₀ + s·B·A‖ (row norms, the norm detached as in its §4.3).
 * PiSSA (Meng et al., 2024): A, B from the top-r singular triplets of W₀; the base becomes W₀ − s·B·A.
 * On the token embedding (E [V, D], ΔE = s·(B·A)ᵀ) DoRA is PEFT's DoraEmbeddingLayer: the magnitude m [D] is
 * per embedding dimension, over the norms of E + ΔE's columns: y = m/‖(E + ΔE)[:, d]‖ ⊙ (E + ΔE)[ids].
 * Ranks and alphas may differ per module (PEFT rank_pattern, alpha_pattern).
 */
import { type NamedTensor, tensorF32 } from '../../formats/checkpoint.js';
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import type { LinearContext } from '../../model/llama.js';
import { svd } from '../../linalg/svd.js';
import { gaussian } from '../../util/random.js';
import type { BuildContext, InitContext, ModuleInfo, ParamStore } from '../types.js';
import { type LoraConfig, loraModuleConfig, loraScaling } from './config.js';
import { cordaFactors } from './corda/corda.js';

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
  const { inFeatures: n, outFeatures: m } = module, r = A.length / n, s = loraScaling(loraModuleConfig(c, module.name));
  const d = new Float64Array(m * n);
  // Stryker disable next-line EqualityOperator: `i <= m` only adds writes past the end of d, which are ignored
  for (let i = 0; i < m; i++) {
    for (let q = 0; q < r; q++) {
      const b = B[i * r + q]! * s;
      for (let j = 0; j < n; j++) d[i * n + j]! += b * A[q * n + j]!;
    }
  }
  return d;
}

/** ‖(E + s·(B·A)ᵀ)[:, d]‖ for every embedding dimension d: E [V, D], A [r, V], B [D, r]. */
function embeddingColumnNorms(E: Float32Array, A: Float32Array, B: Float32Array, V: number, D: number, r: number, s: number): Float32Array {
  const out = new Float32Array(D);
  for (let d = 0; d < D; d++) {
    let s2 = 0;
    for (let v = 0; v < V; v++) {
      let delta = 0;
      for (let q = 0; q < r; q++) delta += B[d * r + q]! * A[q * V + v]!;
      s2 += (E[v * D + d]! + s * delta) ** 2;
    }
    out[d] = Math.sqrt(s2);
  }
  return out;
}

export function createLoraParams(ctx: InitContext<LoraConfig>, onBaseChange: (module: string, w: Float32Array) => void): ParamStore {
  const { config: c } = ctx;
  const store: ParamStore = new Map();
  for (const m of ctx.modules) {
    const k = loraKeys(m.name), mc = loraModuleConfig(c, m.name), r = mc.r, s = loraScaling(mc);
    const A = new Float32Array(r * m.inFeatures), B = new Float32Array(m.outFeatures * r);
    // PiSSA replaces the base by its residual; DoRA's magnitude below is measured on what the forward uses.
    let residual: Float32Array | undefined;
    if (c.init === 'eva') {
      // EVA: A's rows are the components found on the data sample (eva/eva.ts), B zero, so ΔW = 0.
      const rows = c.dataInit?.evaA?.get(m.name);
      if (!rows) throw new Error(`lora: init 'eva' needs a data sample (${m.name} has no components): pass one as addAdapter's 'sample'`);
      if (rows.length !== A.length) throw new Error(`lora: init 'eva': ${m.name} has ${rows.length / m.inFeatures} components for rank ${r}`);
      A.set(rows);
    } else if (c.init === 'corda') {
      const cov = c.dataInit?.cordaCovariance?.get(m.name);
      if (!cov) throw new Error(`lora: init 'corda' needs a data sample (${m.name} has no input covariance): pass one as addAdapter's 'sample'`);
      const W = tensorF32(ctx.baseWeight(m.name));
      const f = cordaFactors(W, cov, m.outFeatures, m.inFeatures, r, s, c.cordaMode, m.name);
      A.set(f.a); B.set(f.b);
      residual = Float32Array.from(W);
      // Stryker disable next-line ArrayDeclaration: loraDelta reads only the factors' data, never their shapes
      const tmp: ParamStore = new Map([[k.a, { shape: [r, m.inFeatures], data: A }], [k.b, { shape: [m.outFeatures, r], data: B }]]);
      const delta = loraDelta(tmp, m, c);
      for (let i = 0; i < residual.length; i++) residual[i]! -= delta[i]!;
      onBaseChange(m.name, residual);
    } else if (c.init === 'pissa') {
      // s is this module's scaling (alphaByModule, rankByModule), as PEFT's pissa_init uses self.scaling, so
      // that s·B·A is exactly W's top-r part.
      const W = tensorF32(ctx.baseWeight(m.name));
      const d = svd(W, m.outFeatures, m.inFeatures);
      if (r > d.k) throw new Error(`lora: rank ${r} exceeds ${m.name}'s smaller dimension ${d.k}`);
      for (let q = 0; q < r; q++) {
        const root = Math.sqrt(d.s[q]! / s);
        // Stryker disable next-line EqualityOperator: `j <= inFeatures` writes the next row's first element, which the next q rewrites (or past the end)
        for (let j = 0; j < m.inFeatures; j++) A[q * m.inFeatures + j] = root * d.vt[q * m.inFeatures + j]!;
        // Stryker disable next-line EqualityOperator: `i <= outFeatures` only adds a write past the end of the typed array, which is ignored
        for (let i = 0; i < m.outFeatures; i++) B[i * r + q] = root * d.u[i * d.k + q]!;
      }
      residual = Float32Array.from(W);
      // Stryker disable next-line ArrayDeclaration: loraDelta reads only the factors' data, never their shapes
      const tmp: ParamStore = new Map([[k.a, { shape: [r, m.inFeatures], data: A }], [k.b, { shape: [m.outFeatures, r], data: B }]]);
      const delta = loraDelta(tmp, m, c);
      // Stryker disable next-line EqualityOperator: `i <= residual.length` only adds a write past the end, which is ignored
      for (let i = 0; i < residual.length; i++) residual[i]! -= delta[i]!;
      onBaseChange(m.name, residual);
    } else if (c.init === 'gaussian') {
      for (let i = 0; i < A.length; i++) A[i] = gaussian(ctx.random) / r;
    } else {
      // Kaiming-uniform with a = √5 on [r, in], as torch.nn.Linear's default: bound = 1/√in.
      const bound = 1 / Math.sqrt(m.inFeatures);
      for (let i = 0; i < A.length; i++) A[i] = (ctx.random() * 2 - 1) * bound;
    }
    if (m.kind === 'embedding') {
      // PEFT's embedding LoRA: A [r, V] zero, B [D, r] normal, ΔE = (B·A)ᵀ.
      const eA = new Float32Array(r * m.inFeatures), eB = new Float32Array(m.outFeatures * r);
      for (let i = 0; i < eB.length; i++) eB[i] = gaussian(ctx.random);
      store.set(k.embA, { shape: [r, m.inFeatures], data: eA });
      store.set(k.embB, { shape: [m.outFeatures, r], data: eB });
      if (c.useDora) {
        const E = tensorF32(ctx.baseWeight(m.name));
        store.set(k.magnitude, { shape: [m.outFeatures], data: embeddingColumnNorms(E, eA, eB, m.inFeatures, m.outFeatures, r, s) });
      }
      continue;
    }
    store.set(k.a, { shape: [r, m.inFeatures], data: A });
    store.set(k.b, { shape: [m.outFeatures, r], data: B });
    if (c.useDora) {
      // m starts at ‖W₀ + ΔW‖ row norms so the first forward pass equals the base (+ LoRA) output; with
      // PiSSA, W₀ is the residual (as PEFT, which initialises DoRA after PiSSA has replaced the base).
      const W = residual ?? tensorF32(ctx.baseWeight(m.name)), delta = loraDelta(store, m, c);
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
  const k = loraKeys(module.name), s = loraScaling(loraModuleConfig(c, module.name));
  const A = module.kind === 'linear' ? b.param(k.a) : undefined, B = module.kind === 'linear' ? b.param(k.b) : undefined;
  const x = b.training && c.dropout > 0 && b.seed ? F.dropout(ctx.x, b.seed, c.dropout, b.nextSite()) : ctx.x;
  // Stryker disable next-line StringLiteral: the scope only labels nodes for error messages; unlabelled, they join the open layer's checkpoint segment, as labelled they do
  return ctx.graph.within(`${module.name}.lora`, () => {
    if (module.kind === 'embedding') {
      // ΔE = s·(B·A)ᵀ: row id of ΔE is s·B·A[:, id].
      const rows = F.embedding(F.transpose(b.param(k.embA), [1, 0]), ctx.ids!);
      const sum = F.add(ctx.base(), F.scale(F.matmul(rows, b.param(k.embB), { transB: true }), s));
      if (!c.useDora) return sum;
      // DoRA on the embedding: (E + ΔE)ᵀ [D, V], its row norms (E's column norms) detached as in §4.3.
      const merged = F.add(F.transpose(F.dequantize(ctx.weight), [1, 0]), F.scale(F.matmul(b.param(k.embB), b.param(k.embA)), s));
      const norm = F.stopGradient(F.sqrt(F.sum(F.mul(merged, merged), [1])));
      return F.mul(sum, F.div(b.param(k.magnitude), norm));
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
  // Stryker disable next-line EqualityOperator: `i <= outFeatures` only adds writes past the end of out, which are ignored
  for (let i = 0; i < module.outFeatures; i++) {
    let s2 = 0;
    for (let j = 0; j < n; j++) s2 += (W[i * n + j]! + delta[i * n + j]!) ** 2;
    const ratio = c.useDora ? params.get(loraKeys(module.name).magnitude)!.data[i]! / Math.sqrt(s2) : 1;
    // Stryker disable next-line EqualityOperator: `j <= n` writes the next row's first element, which that row rewrites (or past the end)
    for (let j = 0; j < n; j++) out[i * n + j] = (W[i * n + j]! + delta[i * n + j]!) * ratio;
  }
  return out;
}
