/** LoRA, rsLoRA, DoRA and PiSSA as one adapter method (as in PEFT, where they are LoRA options). */
import type { AdapterMethod } from '../types.js';
import { type LoraConfig, LORA_OPTIONS, checkPeftLoraImport, fromPeftLoraConfig, parseLoraConfig, toPeftLoraConfig } from './config.js';
import { createLoraParams, loraKeys, loraLinear, mergeLora } from './layer.js';
import { cordaCovariances } from './corda/corda.js';
import { evaConfig, evaInit } from './eva/eva.js';

export const lora: AdapterMethod<LoraConfig> = {
  name: 'lora',
  peftType: 'LORA',
  options: LORA_OPTIONS,
  defaultLr: { value: 3e-3, source: "PEFT's causal-LM LoRA example (examples/causal_language_modeling/peft_lora_clm_accelerate_ds_zero3_offload.py: lr = 3e-3)" },
  parseConfig: parseLoraConfig,
  // EVA and CorDA read the inputs of the targeted modules on a data sample before any parameter exists.
  prepare(config, ctx) {
    if (config.init !== 'eva' && config.init !== 'corda') return config;
    if (!ctx.sample) throw new Error(`lora: init '${config.init}' needs a data sample (addAdapter's 'sample'; adaptkit train takes it from --data)`);
    if (config.init === 'eva') return evaConfig(config, ctx.modules, evaInit(config, ctx.modules, ctx.sample, ctx.linearInputs));
    return { ...config, dataInit: { ...config.dataInit, cordaCovariance: cordaCovariances(ctx.modules, ctx.sample, ctx.linearInputs) } };
  },
  createParams: (ctx) => {
    const store = new Map();
    const params = createLoraParams(ctx, (module, residual) => store.set(`__base__/${module}`, { shape: [], data: residual }));
    for (const [k, v] of store) params.set(k, v);
    return params;
  },
  linear: loraLinear,
  merge: (module, weight, params, config) => {
    if (module.kind === 'embedding') throw new Error('lora: merging an embedding adapter is not supported; keep it unmerged');
    return mergeLora(module, weight, params, config);
  },
  // PiSSA and CorDA train W_res + s·B·A from W_res = W − s·B₀·A₀; against the original W that is the plain LoRA
  // s·[B, −B₀]·[A; A₀] of rank 2r (alpha doubled, or ×√2 with rsLoRA, to keep the scaling).
  exportParams({ params, initial, config, modules }) {
    if (config.init !== 'pissa' && config.init !== 'corda') return { params, config };
    if (config.useDora) throw new Error(`lora: saving a ${config.init === 'pissa' ? 'PiSSA' : 'CorDA'}-initialised DoRA adapter is not supported`);
    const out = new Map();
    for (const m of modules) {
      const k = loraKeys(m.name), r = params.get(k.a)!.shape[0]!;
      const [A, A0, B, B0] = [params.get(k.a)!, initial.get(k.a)!, params.get(k.b)!, initial.get(k.b)!];
      const a2 = new Float32Array(2 * r * m.inFeatures);
      a2.set(A.data, 0); a2.set(A0.data, r * m.inFeatures);
      const b2 = new Float32Array(m.outFeatures * 2 * r);
      // Stryker disable next-line EqualityOperator: `i <= outFeatures` only adds writes past the end of b2, which are ignored
      for (let i = 0; i < m.outFeatures; i++) {
        for (let q = 0; q < r; q++) {
          b2[i * 2 * r + q] = B.data[i * r + q]!;
          b2[i * 2 * r + r + q] = -B0.data[i * r + q]!;
        }
      }
      out.set(k.a, { shape: [2 * r, m.inFeatures], data: a2 });
      out.set(k.b, { shape: [m.outFeatures, 2 * r], data: b2 });
    }
    const alpha = (a: number) => (config.useRslora ? a * Math.SQRT2 : 2 * a);
    const each = (p: Record<string, number>, f: (v: number) => number) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, f(v)]));
    return {
      params: out,
      config: {
        ...config, r: 2 * config.r, alpha: alpha(config.alpha), init: 'default' as const,
        ...(config.rankByModule ? { rankByModule: each(config.rankByModule, (v) => 2 * v) } : {}),
        ...(config.alphaByModule ? { alphaByModule: each(config.alphaByModule, alpha) } : {}),
      },
    };
  },
  toPeftConfig: toPeftLoraConfig,
  fromPeftConfig: fromPeftLoraConfig,
  checkPeftImport: checkPeftLoraImport,
};
export type { LoraConfig } from './config.js';
