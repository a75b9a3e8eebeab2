/**
 * An instance-wise SSF pool, FedIns' adapter (Feng et al., "Learning Federated Instance-wise Adaptation",
 * see README): P SSF entries (a scale and a shift per adapted module) with one key each. Every row's query
 * is the mean base embedding of its context tokens (the instance representation IDPT uses, never a
 * predicted token); the top-k keys by cosine pick the entries, whose scales and shifts are averaged:
 *
 *   w_b = topk(cos(q_b, k_p)) / k                 [B, P], no gradient (a selection)
 *   y_b = base(x)_b ⊙ Σ_p w_bp γ_p + Σ_p w_bp β_p
 *   key_match = mean_b Σ_p w_bp (1 − cos(q_b, k_p))   (logged beside the loss; pulls chosen keys to their queries)
 */
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import { INSTANCE_INPUT } from '../../model/names.js';
import { checkKeys, num, targets } from '../config-utils.js';
import { instanceFeatures } from '../idpt/instance.js';
import { cosines, topKMask } from '../routing.js';
import { selectTargets } from '../targets.js';
import type { AdapterMethod, BuildContext, TargetConfig } from '../types.js';
import { gaussian } from '../../util/random.js';

export interface SsfPoolConfig extends TargetConfig {
  poolSize: number;
  topK: number;
  initStd: number;
}

const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const M = 'ssf-pool';
export const SSF_POOL_KEYS = 'ssf_pool.keys';
export const ssfPoolKeys = (module: string, entry: number) => ({ scale: `${module}.ssf_pool.${entry}.scale`, shift: `${module}.ssf_pool.${entry}.shift` });

export const SSF_POOL_OPTIONS: Readonly<Record<string, string>> = {
  poolSize: 'SSF entries in the pool, each with a key (default 4)',
  topK: 'entries each row uses, chosen by the cosine of its instance representation and the keys (default 2)',
  targetModules: "linear modules scaled and shifted: names or suffixes, or 're:<regex>' (default: all seven projections)",
  initStd: 'σ of the initial γ ~ N(1, σ²), β ~ N(0, σ²) (default 0.02)',
};

function parse(raw: Readonly<Record<string, unknown>>): SsfPoolConfig {
  checkKeys(M, raw, Object.keys(SSF_POOL_OPTIONS));
  const poolSize = num(M, raw, 'poolSize', 4, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  const topK = num(M, raw, 'topK', Math.min(2, poolSize), (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  if (topK > poolSize) throw new Error(`${M}: topK ${topK} exceeds the pool of ${poolSize}`);
  return { poolSize, topK, initStd: num(M, raw, 'initStd', 0.02, (v) => v >= 0, 'a number ≥ 0'), targetModules: targets(M, raw, ALL) };
}

/** The per-row entry weights [B, P] (a selection: no gradient) and the keys' cosines [B, P]. */
function selection(c: SsfPoolConfig, b: BuildContext, rows: number, dim: number): { w: Tensor; cos: Tensor } {
  const g = b.graph;
  const q = g.byName(INSTANCE_INPUT) ?? g.input(INSTANCE_INPUT, [rows, dim], 'f32');
  const cos = cosines(q, b.param(SSF_POOL_KEYS));
  return { w: F.scale(F.stopGradient(topKMask(cos, c.topK)), 1 / c.topK), cos };
}

export const ssfPool: AdapterMethod<SsfPoolConfig> = {
  name: 'ssf-pool',
  peftType: 'SSF_POOL',
  options: SSF_POOL_OPTIONS,
  defaultLr: { value: 3e-3, source: "SSF's (measured on the methods benchmark)" },
  parseConfig: parse,
  selectModules: (c, modules) => selectTargets(c, modules.filter((m) => m.kind === 'linear')),
  createParams(ctx) {
    const c = ctx.config, D = ctx.model.dim, out = new Map();
    // Keys: unit-scale random directions, one per entry, so different entries start with different instances.
    out.set(SSF_POOL_KEYS, { shape: [c.poolSize, D], data: Float32Array.from({ length: c.poolSize * D }, () => gaussian(ctx.random)) });
    for (const m of ctx.modules) {
      for (let p = 0; p < c.poolSize; p++) {
        const k = ssfPoolKeys(m.name, p);
        out.set(k.scale, { shape: [m.outFeatures], data: Float32Array.from({ length: m.outFeatures }, () => 1 + c.initStd * gaussian(ctx.random)) });
        out.set(k.shift, { shape: [m.outFeatures], data: Float32Array.from({ length: m.outFeatures }, () => c.initStd * gaussian(ctx.random)) });
      }
    }
    return out;
  },
  instance: (_c, table, dim, ids, tg, batch, seq) => instanceFeatures(table, dim, ids, tg, batch, seq),
  linear(ctx, module, c, b) {
    const x = ctx.x, rows = x.shape[0]!, O = module.outFeatures, mid = new Array<number>(x.shape.length - 2).fill(1);
    return ctx.graph.within(`${module.name}.ssf_pool`, () => {
      const { w } = selection(c, b, rows, b.param(SSF_POOL_KEYS).shape[1]!);
      const stack = (key: 'scale' | 'shift') => F.concat(Array.from({ length: c.poolSize }, (_, p) => F.reshape(b.param(ssfPoolKeys(module.name, p)[key]), [1, O])), 0); // [P, O]
      const scale = F.reshape(F.matmul(w, stack('scale')), [rows, ...mid, O]), shift = F.reshape(F.matmul(w, stack('shift')), [rows, ...mid, O]);
      return F.add(F.mul(ctx.base(), scale), shift);
    });
  },
  regularizer(_modules, c, b) {
    const keys = b.param(SSF_POOL_KEYS), q = b.graph.byName(INSTANCE_INPUT);
    if (!q) return undefined;
    const { w, cos } = selection(c, b, q.shape[0]!, keys.shape[1]!);
    return F.mean(F.sum(F.mul(w, F.sub(F.fill(b.graph, [1], 1), cos)), [1]));
  },
  regularizerName: 'key_match',
  outputRowKeys: /\.ssf_pool\.\d+\.(scale|shift)$/,
  toPeftConfig: (c) => ({ peft_type: 'SSF_POOL', task_type: 'CAUSAL_LM', pool_size: c.poolSize, top_k: c.topK, target_modules: c.targetModules, init_std: c.initStd, inference_mode: true }),
  fromPeftConfig(j) {
    if (j.peft_type !== 'SSF_POOL') throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "SSF_POOL"`);
    return parse({ poolSize: j.pool_size, topK: j.top_k, targetModules: j.target_modules ?? ALL, initStd: j.init_std ?? 0.02 });
  },
};
