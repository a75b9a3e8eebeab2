/** TriAdaptLoRA: ΔW = B·C·A with C split into triangular parts, ranks grown by a normalised-Frobenius importance. */
import { selectTargets } from '../targets.js';
import type { AdapterMethod } from '../types.js';
import { type TriAdaptConfig, TRIADAPT_OPTIONS, TRIADAPT_PEFT_TYPE, fromTriAdaptJson, parseTriAdaptConfig, toTriAdaptJson } from './config.js';
import { triAdaptController } from './controller.js';
import { createTriAdaptParams, cutToActive, isMask, mergeTriAdapt, triAdaptLinear, triAdaptRegularizer } from './layer.js';

export const triAdaptLora: AdapterMethod<TriAdaptConfig> = {
  name: 'triadaptlora',
  peftType: TRIADAPT_PEFT_TYPE,
  options: TRIADAPT_OPTIONS,
  defaultLr: { value: 3e-3, source: "LoRA's (PEFT's causal-LM LoRA example): TriAdaptLoRA trains low-rank factors of LoRA's scale" },
  parseConfig: parseTriAdaptConfig,
  selectModules: (c, modules) => selectTargets(c, modules.filter((m) => m.kind === 'linear')),
  createParams: createTriAdaptParams,
  trainable: (key) => !isMask(key),
  linear: triAdaptLinear,
  regularizer: triAdaptRegularizer,
  regularizerName: 'orth_reg',
  controller: triAdaptController,
  merge: mergeTriAdapt,
  outputRowKeys: /\.lora_B$/,
  exportParams: ({ params, config, modules }) => cutToActive(params, modules, config),
  toPeftConfig: toTriAdaptJson,
  fromPeftConfig: fromTriAdaptJson,
};
export type { TriAdaptConfig } from './config.js';
export { growthCount } from './controller.js';
