/**
 * (IA)³ (Liu et al., "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context
 * Learning", 2022, §3.3): learned vectors rescale activations elementwise,
 *   attention: softmax(Q(l_k ⊙ Kᵀ)/√d)(l_v ⊙ V),  feed-forward: (l_ff ⊙ γ(W₁x))W₂,
 * i.e. k_proj and v_proj outputs are scaled by l_k, l_v [out], and down_proj's input by l_ff [in].
 * All start at one, so the adapted model starts as the base model. Merging folds the vector into the
 * weight: output scaling scales W's rows (and its bias), input scaling scales W's columns.
 */
import { type NamedTensor, tensorF32 } from '../../formats/checkpoint.js';
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import type { LinearContext } from '../../model/llama.js';
import type { BuildContext, InitContext, ModuleInfo, ParamStore } from '../types.js';
import { type Ia3Config, isFeedforward } from './config.js';

/** PEFT's key: `<module>.ia3_l`, [out, 1] for output scaling, [1, in] for input scaling. */
export const ia3Key = (module: string): string => `${module}.ia3_l`;

export function createIa3Params(ctx: InitContext<Ia3Config>): ParamStore {
  const store: ParamStore = new Map();
  for (const m of ctx.modules) {
    const ff = isFeedforward(ctx.config, m.name);
    store.set(ia3Key(m.name), { shape: ff ? [1, m.inFeatures] : [m.outFeatures, 1], data: new Float32Array(ff ? m.inFeatures : m.outFeatures).fill(1) });
  }
  return store;
}

export function ia3Linear(ctx: LinearContext, module: ModuleInfo, c: Ia3Config, b: BuildContext): Tensor {
  const l = b.param(ia3Key(module.name));
  return ctx.graph.within(`${module.name}.ia3`, () => {
    if (isFeedforward(c, module.name)) return ctx.base(F.mul(ctx.x, F.reshape(l, [module.inFeatures])));
    return F.mul(ctx.base(), F.reshape(l, [module.outFeatures]));
  });
}

function vector(params: ParamStore, module: ModuleInfo): Float32Array {
  const l = params.get(ia3Key(module.name))?.data;
  if (!l) throw new Error(`(IA)³ parameters for ${module.name} are missing`);
  return l;
}

export function mergeIa3(module: ModuleInfo, weight: NamedTensor, params: ParamStore, c: Ia3Config): Float32Array {
  const l = vector(params, module), W = tensorF32(weight), n = module.inFeatures, out = new Float32Array(W.length);
  const ff = isFeedforward(c, module.name);
  for (let i = 0; i < module.outFeatures; i++) for (let j = 0; j < n; j++) out[i * n + j] = W[i * n + j]! * (ff ? l[j]! : l[i]!);
  return out;
}

/** Output scaling scales an existing bias too; input scaling leaves it. */
export function mergeIa3Bias(module: ModuleInfo, bias: NamedTensor | undefined, params: ParamStore, c: Ia3Config): Float32Array | undefined {
  if (!bias || isFeedforward(c, module.name)) return undefined;
  const l = vector(params, module);
  return Float32Array.from(tensorF32(bias), (v, i) => v * l[i]!);
}
