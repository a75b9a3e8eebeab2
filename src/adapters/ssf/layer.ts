/**
 * SSF (Lian et al., "Scaling & Shifting Your Features: A New Baseline for Efficient Model Tuning", 2022):
 *   y = γ ⊙ x + β  (eq. 1), with x the output of a linear layer, γ, β ∈ R^out.
 * Re-parameterisation (§3.2): γ ⊙ (Wx + b) + β = (diag(γ)·W)x + (γ ⊙ b + β), so a merged SSF is
 * the preceding linear layer with scaled rows and a new bias.
 */
import { type NamedTensor, tensorF32 } from '../../formats/checkpoint.js';
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import type { LinearContext } from '../../model/llama.js';
import { gaussian } from '../../util/random.js';
import type { BuildContext, InitContext, ModuleInfo, ParamStore } from '../types.js';
import type { SsfConfig } from './config.js';

export const ssfKeys = (module: string) => ({ scale: `${module}.ssf_scale`, shift: `${module}.ssf_shift` });

export function createSsfParams(ctx: InitContext<SsfConfig>): ParamStore {
  const store: ParamStore = new Map();
  const sd = ctx.config.initStd;
  for (const m of ctx.modules) {
    const k = ssfKeys(m.name);
    store.set(k.scale, { shape: [m.outFeatures], data: Float32Array.from({ length: m.outFeatures }, () => 1 + sd * gaussian(ctx.random)) });
    store.set(k.shift, { shape: [m.outFeatures], data: Float32Array.from({ length: m.outFeatures }, () => sd * gaussian(ctx.random)) });
  }
  return store;
}

export function ssfLinear(ctx: LinearContext, module: ModuleInfo, _c: SsfConfig, b: BuildContext): Tensor {
  const k = ssfKeys(module.name);
  const [scale, shift] = [b.param(k.scale), b.param(k.shift)];
  return ctx.graph.within(`${module.name}.ssf`, () => F.add(F.mul(ctx.base(), scale), shift));
}

function vectors(params: ParamStore, module: ModuleInfo): { scale: Float32Array; shift: Float32Array } {
  const k = ssfKeys(module.name);
  const scale = params.get(k.scale)?.data, shift = params.get(k.shift)?.data;
  if (!scale || !shift) throw new Error(`SSF parameters for ${module.name} are missing`);
  return { scale, shift };
}

export function mergeSsf(module: ModuleInfo, weight: NamedTensor, params: ParamStore): Float32Array {
  const { scale } = vectors(params, module), n = module.inFeatures;
  return Float32Array.from(tensorF32(weight), (w, i) => w * scale[Math.floor(i / n)]!);
}

export function mergeSsfBias(module: ModuleInfo, bias: NamedTensor | undefined, params: ParamStore): Float32Array {
  const { scale, shift } = vectors(params, module);
  const b = bias && tensorF32(bias);
  return Float32Array.from(shift, (s, i) => (b ? b[i]! * scale[i]! : 0) + s);
}
