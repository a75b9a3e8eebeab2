/** PHATGOOSE: post-hoc, per-token, per-module routing among separately trained LoRA experts. */
import type { AdapterMethod } from '../types.js';
import { type PhatgooseConfig, fromPeftPhatgooseConfig, parsePhatgooseConfig, PHATGOOSE_OPTIONS, toPeftPhatgooseConfig } from './config.js';
import { createPhatgooseParams, phatgooseLinear } from './layer.js';

export const phatgoose: AdapterMethod<PhatgooseConfig> = {
  name: 'phatgoose',
  peftType: 'PHATGOOSE',
  options: PHATGOOSE_OPTIONS,
  defaultLr: { value: 1e-2, source: 'chosen, not tuned: between LoRA\'s 3e-3 and prompt tuning\'s 3e-2, for one vector per module trained 100 steps' },
  parseConfig: parsePhatgooseConfig,
  selectModules: (c, modules) => {
    const out = modules.filter((m) => m.kind === 'linear' && c.targetModules.includes(m.name));
    const missing = c.targetModules.filter((t) => !out.some((m) => m.name === t));
    if (missing.length) throw new Error(`phatgoose: the model has no linear module ${missing.slice(0, 3).join(', ')}`);
    return out;
  },
  createParams: createPhatgooseParams,
  // Only the gates train; the experts stay as they were trained.
  trainable: (key) => key.endsWith('.gate'),
  linear: phatgooseLinear,
  outputRowKeys: /\.lora_B\.weight$/,
  toPeftConfig: toPeftPhatgooseConfig,
  fromPeftConfig: fromPeftPhatgooseConfig,
};
export type { PhatgooseConfig } from './config.js';
