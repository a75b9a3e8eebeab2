/**
 * Poly (Ponti et al., "Combining Parameter-efficient Modules for Task-level Generalisation", EACL 2023) and
 * Multi-Head Routing (Caccia et al., "Multi-Head Adapter Routing for Cross-Task Generalization", NeurIPS
 * 2023), as PEFT's `POLY` computes them. Per module, K skills (LoRAs of rank r) are cut into S splits along
 * their input and output features; a router keeps logits Z [n_tasks, S·K]. For a row of task t:
 *   z = σ(Z[t] + log u − log(1 − u)), u ~ U(0, 1) while training (a relaxed Bernoulli sample, temperature 1),
 *   z = σ(Z[t]) at eval;  w[q, k] = z[q, k] / (Σ_k' z[q, k'] + 1e-12)                          (Poly eq. 4–5)
 *   A_t[q] = Σ_k w[q, k]·A[q, k]  ([in/S, r]),  B_t[q] = Σ_k w[q, k]·B[q, k]  ([r, out/S])
 *   h = W₀x + (x·A_t)·B_t / r,  A_t = [A_t[0]; …; A_t[S−1]] [in, r],  B_t = [B_t[0] … B_t[S−1]] [r, out]
 * (the input's split q meets A_t[q]; the output's split q comes from B_t[q]). With one skill and one split
 * this is LoRA with A = A[0, 0]ᵀ, B = B[0, 0]ᵀ and scaling 1/r.
 * Tensors (PEFT's names and shapes): poly_lora_A [S, K, in/S, r], poly_lora_B [S, K, r, out/S],
 * poly_router.module_logits [n_tasks, S·K].
 */
import { configHeadDim, type LlamaConfig, permuteQKHalfToPairs, permuteQKPairsToHalf } from '../../formats/checkpoint.js';
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import type { LinearContext } from '../../model/llama.js';
import { TASK_ID_INPUT } from '../../model/names.js';
import type { BuildContext, InitContext, ModuleInfo, ParamStore } from '../types.js';
import type { PolyConfig } from './config.js';

/** PEFT's router adds this to the sum of a split's weights before dividing (tuners/poly/router.py EPS). */
export const POLY_EPS = 1e-12;

export const polyKeys = (module: string) => ({
  a: `${module}.poly_lora_A`,
  b: `${module}.poly_lora_B`,
  logits: `${module}.poly_router.module_logits`,
});

/** Whether the rotary layout permutes a module's output rows, and how many heads they form. */
function qkHeads(module: string, model: LlamaConfig): number | undefined {
  if (model.ropeLayout === 'half') return undefined;
  if (module.endsWith('.self_attn.q_proj')) return model.nHeads;
  if (module.endsWith('.self_attn.k_proj')) return model.nKvHeads;
  return undefined;
}

/** Every split must hold whole features, and on q_proj/k_proj of a pair-rotary model whole heads (see reorientPoly). */
export function checkPolySplits(c: PolyConfig, modules: readonly ModuleInfo[], model: LlamaConfig): void {
  const S = c.polySplits;
  for (const m of modules) {
    if (m.inFeatures % S || m.outFeatures % S) throw new Error(`poly: ${S} splits do not divide ${m.name}'s ${m.inFeatures} inputs and ${m.outFeatures} outputs evenly`);
    const hd = configHeadDim(model);
    if (qkHeads(m.name, model) && (m.outFeatures / S) % hd) {
      throw new Error(`poly: ${S} splits cut ${m.name}'s ${m.outFeatures} outputs into parts of ${m.outFeatures / S}, not whole heads of ${hd}, which this model's rotary row order (GGUF pairs) cannot keep; use a number of splits that divides the ${m.outFeatures / hd} heads`);
    }
  }
}

/** Kaiming-uniform (a = √5, as torch.nn.Linear) values of a [rows, cols] weight, stored transposed at `into[at…]`: [cols, rows]. */
function kaimingTransposed(random: () => number, rows: number, cols: number, into: Float32Array, at: number): void {
  const bound = 1 / Math.sqrt(cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) into[at + j * rows + i] = (random() * 2 - 1) * bound;
}

/**
 * PEFT's reset_poly_parameters: each skill's A split as a [r, in/S] nn.Linear weight transposed; B zero
 * (or, without init_weights, like A from [out/S, r]); router logits U(−1e-3, 1e-3). Every module's factors
 * are drawn before any router, so that one skill and one split draw A exactly as LoRA does from the same seed.
 */
export function createPolyParams(ctx: InitContext<PolyConfig>): ParamStore {
  const c = ctx.config, S = c.polySplits, K = c.polySkills, r = c.r;
  checkPolySplits(c, ctx.modules, ctx.model);
  const store: ParamStore = new Map();
  for (const m of ctx.modules) {
    const din = m.inFeatures / S, dout = m.outFeatures / S, k = polyKeys(m.name);
    const A = new Float32Array(S * K * din * r), B = new Float32Array(S * K * r * dout);
    for (let s = 0; s < K; s++) {
      for (let q = 0; q < S; q++) {
        kaimingTransposed(ctx.random, r, din, A, (q * K + s) * din * r);
        if (!c.initWeights) kaimingTransposed(ctx.random, dout, r, B, (q * K + s) * r * dout);
      }
    }
    store.set(k.a, { shape: [S, K, din, r], data: A });
    store.set(k.b, { shape: [S, K, r, dout], data: B });
  }
  for (const m of ctx.modules) {
    const Z = Float32Array.from({ length: c.polyTasks * S * K }, () => (ctx.random() * 2 - 1) * 1e-3);
    store.set(polyKeys(m.name).logits, { shape: [c.polyTasks, S * K], data: Z });
  }
  return store;
}

/** σ(x) = ½ + ½·tanh(x/2), which never overflows. */
function sigmoid(x: Tensor): Tensor {
  return F.add(F.scale(F.tanh(F.scale(x, 0.5)), 0.5), F.fill(x.graph, [1], 0.5));
}

/** The adapted linear layer's output. x [B, T, in] → [B, T, out]; each batch row is routed by its task id. */
export function polyLinear(ctx: LinearContext, module: ModuleInfo, c: PolyConfig, b: BuildContext): Tensor {
  const k = polyKeys(module.name), g = ctx.graph, x = ctx.x;
  const rows = x.shape[0]!, S = c.polySplits, K = c.polySkills, r = c.r;
  const din = module.inFeatures / S, dout = module.outFeatures / S;
  const tasks = g.byName(TASK_ID_INPUT) ?? g.input(TASK_ID_INPUT, [rows], 'i32');
  const A = b.param(k.a), B = b.param(k.b), Z = b.param(k.logits);
  const salt = b.training && b.seed ? b.nextSite() : 0;
  // Stryker disable next-line StringLiteral: the scope only labels nodes for error messages
  return g.within(`${module.name}.poly`, () => {
    const logits = F.embedding(Z, tasks);
    let z: Tensor;
    if (b.training && b.seed) {
      // RelaxedBernoulli(temperature 1, logits).rsample(): σ(logits + L), L = log u − log(1 − u) logistic noise.
      const u = F.uniform(b.seed, [rows, S * K], salt);
      z = sigmoid(F.add(logits, F.sub(F.log(u), F.log(F.sub(F.fill(g, [1], 1), u)))));
    } else {
      z = sigmoid(logits);
    }
    const z3 = F.reshape(z, [rows, S, K]);
    const w = F.div(z3, F.add(F.sum(z3, [2], true), F.fill(g, [1], POLY_EPS)));
    // Per split q: [B, K] weights times the K skills' flattened factors; then rows first again.
    const wq = F.transpose(w, [1, 0, 2]);
    const At = F.reshape(F.transpose(F.matmul(wq, F.reshape(A, [S, K, din * r])), [1, 0, 2]), [rows, module.inFeatures, r]);
    const Bq = F.reshape(F.matmul(wq, F.reshape(B, [S, K, r * dout])), [S, rows, r, dout]);
    const Bt = F.reshape(F.transpose(Bq, [1, 2, 0, 3]), [rows, r, module.outFeatures]);
    return F.add(ctx.base(), F.scale(F.matmul(F.matmul(x, At), Bt), 1 / r));
  });
}

/**
 * A module's routing weights w [S, K] at eval: task `task`'s σ(Z[t]) normalised per split as the forward
 * pass does, or, without a task, 1/K everywhere (MHR-μ: the average of the skills).
 */
export function polyWeights(params: ParamStore, module: ModuleInfo, c: PolyConfig, task?: number): Float64Array {
  const S = c.polySplits, K = c.polySkills, w = new Float64Array(S * K);
  if (task === undefined) return w.fill(1 / K);
  const Z = params.get(polyKeys(module.name).logits)!.data;
  for (let q = 0; q < S; q++) {
    let sum = 0;
    for (let s = 0; s < K; s++) sum += (w[q * K + s] = 1 / (1 + Math.exp(-Z[task * S * K + q * K + s]!)));
    for (let s = 0; s < K; s++) w[q * K + s]! /= sum + POLY_EPS;
  }
  return w;
}

/** The module's LoRA factors for routing weights w [S, K]: A_t [in, r] and B_t [r, out] as the forward pass mixes them. */
export function mixedFactors(params: ParamStore, module: ModuleInfo, c: PolyConfig, w: Float64Array): { A: Float64Array; B: Float64Array } {
  const k = polyKeys(module.name), S = c.polySplits, K = c.polySkills, r = c.r;
  const din = module.inFeatures / S, dout = module.outFeatures / S;
  const Ap = params.get(k.a)!.data, Bp = params.get(k.b)!.data;
  const A = new Float64Array(module.inFeatures * r), B = new Float64Array(r * module.outFeatures);
  for (let q = 0; q < S; q++) {
    for (let s = 0; s < K; s++) {
      const ws = w[q * K + s]!, base = q * K + s;
      // A[q, s] [din, r] fills rows q·din… of A_t.
      for (let i = 0; i < din * r; i++) A[q * din * r + i]! += ws * Ap[base * din * r + i]!;
      // B[q, s] [r, dout] fills columns q·dout… of B_t.
      for (let j = 0; j < r; j++) for (let d = 0; d < dout; d++) B[j * module.outFeatures + q * dout + d]! += ws * Bp[base * r * dout + j * dout + d]!;
    }
  }
  return { A, B };
}

/**
 * Q/K output features between this library's rotary row order and Hugging Face's: B's last axis holds, per
 * split, a run of the module's outputs; splits are whole heads (checkPolySplits), so each output moves
 * within its split. A and the router read no output feature.
 */
export function reorientPoly(params: ParamStore, o: { model: LlamaConfig; config: PolyConfig; toHf: boolean }): ParamStore {
  const out: ParamStore = new Map(params);
  const S = o.config.polySplits, K = o.config.polySkills, r = o.config.r, hd = configHeadDim(o.model);
  const permute = o.toHf ? permuteQKPairsToHalf : permuteQKHalfToPairs;
  for (const [key, t] of params) {
    if (!key.endsWith('.poly_lora_B')) continue;
    const heads = qkHeads(key.slice(0, -'.poly_lora_B'.length), o.model);
    if (!heads) continue;
    const dout = t.shape[3]!, outF = S * dout, cols = K * r;
    // As [out, K·r] rows: row q·dout + d, column s·r + j is B[q, s, j, d].
    const rowsOf = new Float32Array(outF * cols);
    const at = (q: number, s: number, j: number, d: number): number => ((q * K + s) * r + j) * dout + d;
    for (let q = 0; q < S; q++) for (let s = 0; s < K; s++) for (let j = 0; j < r; j++) for (let d = 0; d < dout; d++) rowsOf[(q * dout + d) * cols + s * r + j] = t.data[at(q, s, j, d)]!;
    const moved = permute(rowsOf, heads, hd, cols), data = new Float32Array(t.data.length);
    for (let q = 0; q < S; q++) for (let s = 0; s < K; s++) for (let j = 0; j < r; j++) for (let d = 0; d < dout; d++) data[at(q, s, j, d)] = moved[(q * dout + d) * cols + s * r + j]!;
    out.set(key, { shape: t.shape, data });
  }
  return out;
}
