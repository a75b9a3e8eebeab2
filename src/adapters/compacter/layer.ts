/**
 * Compacter (Mahabadi, Henderson, Ruder, "Compacter: Efficient Low-Rank Hypercomplex Adapter Layers",
 * NeurIPS 2021): a bottleneck adapter whose down and up projections are low-rank parameterized
 * hypercomplex multiplication (LPHM) layers,
 *   W = Σᵢ₌₁ⁿ Aᵢ ⊗ Bᵢ,   Bᵢ = sᵢ·tᵢ  (rank-one in the paper; rank phmRank here),
 * with Aᵢ ∈ R^{n×n} the "slow" rule matrices shared by all Compacter layers and sᵢ ∈ R^{out/n×r},
 * tᵢ ∈ R^{r×in/n} the "fast" per-layer factors (§3, eqs. for PHM and LPHM layers). The Kronecker sum is
 * built in the graph from broadcasting products: A [n, n, 1, n, 1] ⊙ B [n, 1, p, 1, q], summed over i, is
 * W [n·p, n·q] with W[a·p + x, b·q + y] = Σᵢ Aᵢ[a, b]·Bᵢ[x, y].
 */
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import type { SublayerContext } from '../../model/llama.js';
import { gaussian } from '../../util/random.js';
import { bottleneckWidth } from '../bottleneck/config.js';
import { bottleneckSublayer } from '../bottleneck/layer.js';
import type { BuildContext, InitContext, ModuleInfo, ParamStore } from '../types.js';
import type { CompacterConfig } from './config.js';

/** Keys of one projection: its rule matrices (shared or per layer), fast factors and bias. */
export function phmKeys(module: string, which: 'down' | 'up', c: CompacterConfig) {
  return {
    rule: c.sharedPhmRule ? `compacter.phm_rule_${which}` : `${module}.adapter_${which}.phm_rule`,
    s: `${module}.adapter_${which}.phm_s`, t: `${module}.adapter_${which}.phm_t`, bias: `${module}.adapter_${which}.bias`,
  };
}

export function createCompacterParams(ctx: InitContext<CompacterConfig>): ParamStore {
  const c = ctx.config, n = c.phmDim, r = c.phmRank, store: ParamStore = new Map();
  const normal = (len: number, sd: number) => Float32Array.from({ length: len }, () => sd * gaussian(ctx.random));
  for (const mod of ctx.modules) {
    const d = mod.inFeatures, m = bottleneckWidth(c, d);
    if (d % n || m % n) throw new Error(`compacter: phmDim ${n} must divide the model width ${d} and the bottleneck width ${m}`);
    for (const [which, inF, outF] of [['down', d, m], ['up', m, d]] as const) {
      const k = phmKeys(mod.name, which, c);
      // Rule entries ~ N(0, 1/n) and fast factors ~ N(0, (r·in)^(-1/2)) give W entries of variance 1/in
      // (Kaiming-like); the up projection's s starts at zero so a fresh adapter adds nothing.
      if (!store.has(k.rule)) store.set(k.rule, { shape: [n, n, n], data: normal(n * n * n, 1 / Math.sqrt(n)) });
      const sd = (r * inF) ** -0.25;
      store.set(k.s, { shape: [n, outF / n, r], data: which === 'up' ? new Float32Array(outF * r) : normal(outF * r, sd) });
      store.set(k.t, { shape: [n, r, inF / n], data: normal(inF * r, sd) });
      store.set(k.bias, { shape: [outF], data: new Float32Array(outF) });
    }
  }
  return store;
}

/** W [out, in] = Σᵢ Aᵢ ⊗ (sᵢ·tᵢ). */
export function phmWeight(rule: Tensor, s: Tensor, t: Tensor): Tensor {
  const [n, p] = [s.shape[0]!, s.shape[1]!], q = t.shape[2]!;
  const fast = F.reshape(F.matmul(s, t), [n, 1, p, 1, q]);
  const kron = F.sum(F.mul(F.reshape(rule, [n, n, 1, n, 1]), fast), [0]);
  return F.reshape(kron, [n * p, n * q]);
}

export function compacterLayer(ctx: SublayerContext, module: ModuleInfo, c: CompacterConfig, b: BuildContext): Tensor {
  return bottleneckSublayer(ctx, c, (h, which) => {
    const k = phmKeys(module.name, which, c);
    const W = phmWeight(b.param(k.rule), b.param(k.s), b.param(k.t));
    return F.add(F.matmul(h, W, { transB: true }), b.param(k.bias));
  });
}
