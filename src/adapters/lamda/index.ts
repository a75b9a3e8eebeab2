/** LaMDA / LaMDA++: frozen PMA, a trained r×r core S, PMB frozen gradually; LaMDA++ allocates ranks by spectrum. */
import { selectTargets } from '../targets.js';
import type { AdapterMethod } from '../types.js';
import { type LamdaConfig, LAMDA_OPTIONS, LAMDA_PEFT_TYPE, fromLamdaJson, parseLamdaConfig, toLamdaJson } from './config.js';
import { lamdaController } from './controller.js';
import { createLamdaParams, isPma, lamdaLinear, mergeLamda } from './layer.js';

export const lamda: AdapterMethod<LamdaConfig> = {
  name: 'lamda',
  peftType: LAMDA_PEFT_TYPE,
  options: LAMDA_OPTIONS,
  defaultLr: { value: 3e-3, source: "LoRA's (PEFT's causal-LM LoRA example): LaMDA trains low-rank factors of LoRA's scale" },
  parseConfig: parseLamdaConfig,
  selectModules: (c, modules) => selectTargets(c, modules.filter((m) => m.kind === 'linear')),
  createParams: createLamdaParams,
  trainable: (key) => !isPma(key),
  linear: lamdaLinear,
  controller: lamdaController,
  merge: mergeLamda,
  outputRowKeys: /\.lamda_B\.weight$/,
  toPeftConfig: toLamdaJson,
  fromPeftConfig: fromLamdaJson,
};
export type { LamdaConfig } from './config.js';
export { frozenColumns } from './controller.js';
export { allocateRanks } from './spectrum.js';
