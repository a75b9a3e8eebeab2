/** AdaLoRA: SVD-form updates P·Λ·Q with an orthogonality regulariser and importance-driven rank budgets. */
import { selectTargets } from '../targets.js';
import type { AdapterMethod } from '../types.js';
import { adaloraController } from './allocator.js';
import { type AdaloraConfig, ADALORA_OPTIONS, fromPeftAdaloraConfig, parseAdaloraConfig, toPeftAdaloraConfig } from './config.js';
import { adaloraLinear, adaloraRegularizer, createAdaloraParams, mergeAdalora, resizeByRankPattern } from './layer.js';

export const adalora: AdapterMethod<AdaloraConfig> = {
  name: 'adalora',
  peftType: 'ADALORA',
  options: ADALORA_OPTIONS,
  defaultLr: { value: 3e-2, source: "measured on the methods benchmark (names-task, 40 steps): PEFT's example value 1e-3 (examples/conditional_generation/peft_adalora_seq2seq.py) moves the held-out loss by 0.0002, as P·Λ·Q starts with Λ = 0 and grows as a product of three factors; 3e-2 ends 0.04 below the base" },
  parseConfig: parseAdaloraConfig,
  selectModules: (c, modules) => selectTargets(c, modules.filter((m) => m.kind === 'linear')),
  createParams: createAdaloraParams,
  linear: adaloraLinear,
  regularizer: adaloraRegularizer,
  regularizerName: 'orth_reg',
  controller: adaloraController,
  merge: mergeAdalora,
  outputRowKeys: /\.lora_B$/,
  // PEFT saves only the kept triplets of each module, with the allocation as rank_pattern.
  exportParams: ({ params, config, modules }) => ({ params: resizeByRankPattern(params, modules, config), config }),
  toPeftConfig: toPeftAdaloraConfig,
  fromPeftConfig: fromPeftAdaloraConfig,
};
export type { AdaloraConfig } from './config.js';
export { adaloraBudget } from './allocator.js';
