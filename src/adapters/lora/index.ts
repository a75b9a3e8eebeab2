/** LoRA, rsLoRA, DoRA and PiSSA as one adapter method (as in PEFT, where they are LoRA options). */
import type { AdapterMethod } from '../types.js';
import { type LoraConfig, LORA_OPTIONS, fromPeftLoraConfig, parseLoraConfig, toPeftLoraConfig } from './config.js';
import { createLoraParams, loraLinear, mergeLora } from './layer.js';

export const lora: AdapterMethod<LoraConfig> = {
  name: 'lora',
  peftType: 'LORA',
  options: LORA_OPTIONS,
  parseConfig: parseLoraConfig,
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
  toPeftConfig: toPeftLoraConfig,
  fromPeftConfig: fromPeftLoraConfig,
};
export type { LoraConfig } from './config.js';
