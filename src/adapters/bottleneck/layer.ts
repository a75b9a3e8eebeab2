/**
 * Bottleneck adapters on a Llama block's output (the `sublayer` hook, before the residual add):
 *   adapter(h) = W_up · f(W_down · h + b_down) + b_up,   W_down [m, d], W_up [d, m], m = d / reductionFactor
 * (Houlsby et al., "Parameter-Efficient Transfer Learning for NLP", ICML 2019, §2.1). Placements: Houlsby
 * (after the attention and the feed-forward block) and Pfeiffer (Pfeiffer et al., "AdapterFusion", EACL
 * 2021: after the feed-forward block only). Connections and the adapter's own residual follow
 * Cappellazzo et al., "Parameter-Efficient Transfer Learning of Audio Spectrogram Transformers" (MLSP 2024):
 *   sequential:  x + adapter(o) [+ o]        parallel:  x + o + adapter(n) [+ n]
 * with o the block output, n its normed input, x the residual stream; the bracketed term is `residual`.
 * W_up starts at zero, so a fresh adapter leaves the model unchanged (sequential without residual excepted:
 * it then replaces the block output, which is the point of that configuration).
 */
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import type { SublayerContext } from '../../model/llama.js';
import { gaussian } from '../../util/random.js';
import type { BuildContext, InitContext, ModuleInfo, ParamStore } from '../types.js';
import { type BottleneckConfig, bottleneckWidth } from './config.js';

export const bottleneckKeys = (module: string) => ({
  down: `${module}.adapter_down.weight`, downBias: `${module}.adapter_down.bias`,
  up: `${module}.adapter_up.weight`, upBias: `${module}.adapter_up.bias`,
});

/** Houlsby's near-identity init for W_down (N(0, 0.01²)), zero W_up and biases. */
export function createBottleneckParams(ctx: InitContext<BottleneckConfig>): ParamStore {
  const store: ParamStore = new Map();
  for (const mod of ctx.modules) {
    const k = bottleneckKeys(mod.name), d = mod.inFeatures, m = bottleneckWidth(ctx.config, d);
    store.set(k.down, { shape: [m, d], data: Float32Array.from({ length: m * d }, () => 0.01 * gaussian(ctx.random)) });
    store.set(k.downBias, { shape: [m], data: new Float32Array(m) });
    store.set(k.up, { shape: [d, m], data: new Float32Array(d * m) });
    store.set(k.upBias, { shape: [d], data: new Float32Array(d) });
  }
  return store;
}

/** A projection h [..., in] → [..., out] of the adapter (dense here, PHM in Compacter). */
export type Projection = (h: Tensor, which: 'down' | 'up') => Tensor;

/** The configured connection around an adapter made of two projections and the activation. */
export function bottleneckSublayer(ctx: SublayerContext, c: BottleneckConfig, project: Projection): Tensor {
  return ctx.graph.within(`${ctx.name}.adapter`, () => {
    const source = c.connection === 'sequential' ? ctx.output : ctx.input;
    const hidden = project(source, 'down');
    const adapted = project(c.activation === 'gelu' ? F.gelu(hidden) : F.silu(hidden), 'up');
    const withSkip = c.residual ? F.add(adapted, source) : adapted;
    return c.connection === 'sequential' ? withSkip : F.add(ctx.output, withSkip);
  });
}

export function bottleneckLayer(ctx: SublayerContext, module: ModuleInfo, c: BottleneckConfig, b: BuildContext): Tensor {
  const k = bottleneckKeys(module.name);
  return bottleneckSublayer(ctx, c, (h, which) => F.add(
    F.matmul(h, b.param(which === 'down' ? k.down : k.up), { transB: true }),
    b.param(which === 'down' ? k.downBias : k.upBias),
  ));
}
