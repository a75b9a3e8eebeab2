/**
 * PHATGOOSE (Muqeeth, Liu, Li, Raffel, "Learning to Route Among Specialized Experts for Zero-Shot
 * Generalization", ICML 2024), per adapted module with experts e = 1…E (LoRA: A_e [r_e, in], B_e [out, r_e],
 * scaling s_e) and gate vectors v_e [in]:
 *
 *   gate training (one expert, A and B frozen):  y = W₀x + σ(v·x) · s·B A x
 *   routing:  x̂ = standardise(x), v̂_e = standardise(v_e)              (zero mean, unit variance over in)
 *             c_e = x̂·v̂_e / in                                          (their cosine, in [−1, 1])
 *             K  = the top-k experts by c_e (ties share a place)
 *             w_e = 1[e ∈ K] · exp((c_e − 1)/τ) / Σ_{e'∈K} exp((c_e' − 1)/τ)    (τ = 1/√in unless set)
 *             y = W₀x + Σ_e w_e · s_e B_e A_e x
 *
 * The top-k set is computed with elementwise ops only: e's rank is the number of experts scoring above it,
 * Σ_j step(c_j − c_e), and e is chosen when rank < k, with step(d) = ½(1 + d/√(d² + 10⁻³⁰)) (exactly 0 or 1
 * in float32 except at a tie, where tied experts get ½ each).
 */
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import type { LinearContext } from '../../model/llama.js';
import type { BuildContext, InitContext, ModuleInfo, ParamStore } from '../types.js';
import type { PhatgooseConfig } from './config.js';
import { standardise, topKMask } from '../routing.js';

export const phatgooseKeys = (module: string, expert: string) => ({
  a: `${module}.phatgoose.${expert}.lora_A.weight`,
  b: `${module}.phatgoose.${expert}.lora_B.weight`,
  gate: `${module}.phatgoose.${expert}.gate`,
});

/** Shapes only (values come from the experts' folders and gate training); gates start at zero (σ = ½). */
export function createPhatgooseParams(ctx: InitContext<PhatgooseConfig>): ParamStore {
  const out: ParamStore = new Map();
  for (const m of ctx.modules) {
    for (const e of ctx.config.experts) {
      const k = phatgooseKeys(m.name, e.name);
      out.set(k.a, { shape: [e.r, m.inFeatures], data: new Float32Array(e.r * m.inFeatures) });
      out.set(k.b, { shape: [m.outFeatures, e.r], data: new Float32Array(m.outFeatures * e.r) });
      out.set(k.gate, { shape: [m.inFeatures], data: new Float32Array(m.inFeatures) });
    }
  }
  return out;
}

const sigmoid = (x: Tensor): Tensor => F.add(F.scale(F.tanh(F.scale(x, 0.5)), 0.5), F.fill(x.graph, [1], 0.5));

/** The routing weights [N, E] for tokens x [N, in] and gates [E, in]. */
export function routeWeights(x: Tensor, gates: Tensor, topK: number, temperature: number): Tensor {
  const D = x.shape[1]!;
  const c = F.scale(F.matmul(standardise(x), standardise(gates), { transB: true }), 1 / D); // [N, E]
  const chosen = topKMask(c, topK);
  const e = F.mul(chosen, F.exp(F.scale(F.sub(c, F.fill(x.graph, [1], 1)), 1 / temperature)));
  return F.div(e, F.add(F.sum(e, [1], true), F.fill(x.graph, [1], 1e-30)));
}

export function phatgooseLinear(ctx: LinearContext, module: ModuleInfo, c: PhatgooseConfig, b: BuildContext): Tensor {
  const x = ctx.x, lead = x.shape.slice(0, -1), N = lead.reduce((p, q) => p * q, 1), D = module.inFeatures;
  const flat = F.reshape(x, [N, D]);
  const expertOut = (name: string, s: number): Tensor => {
    const k = phatgooseKeys(module.name, name);
    return F.scale(F.matmul(F.matmul(flat, b.param(k.a), { transB: true }), b.param(k.b), { transB: true }), s); // [N, out]
  };
  return ctx.graph.within(`${module.name}.phatgoose`, () => {
    let delta: Tensor;
    if (c.mode === 'gate') {
      const e = c.experts[0]!;
      const g = sigmoid(F.matmul(flat, F.reshape(b.param(phatgooseKeys(module.name, e.name).gate), [D, 1]))); // [N, 1]
      delta = F.mul(expertOut(e.name, e.scaling), g);
    } else {
      const gates = F.concat(c.experts.map((e) => F.reshape(b.param(phatgooseKeys(module.name, e.name).gate), [1, D])), 0);
      // τ = 0 stands for the reference's scale: softmax(x̂·v̂/√in) = softmax(c·√in), i.e. τ = 1/√in.
      const w = routeWeights(flat, gates, c.topK, c.temperature > 0 ? c.temperature : 1 / Math.sqrt(D));
      delta = c.experts.map((e, i) => F.mul(expertOut(e.name, e.scaling), F.slice(w, 1, i, i + 1))).reduce((p, q) => F.add(p, q));
    }
    return F.add(ctx.base(), F.reshape(delta, [...lead, module.outFeatures]));
  });
}
