/** Hydra: parallel and sequential low-rank branches on the same linear layer; mergeable. */
import { selectTargets } from '../targets.js';
import type { AdapterMethod } from '../types.js';
import { type HydraConfig, HYDRA_OPTIONS, HYDRA_PEFT_TYPE, fromHydraJson, parseHydraConfig, toHydraJson } from './config.js';
import { createHydraParams, hydraLinear, mergeHydra, mergeHydraBias } from './layer.js';

export const hydra: AdapterMethod<HydraConfig> = {
  name: 'hydra',
  peftType: HYDRA_PEFT_TYPE,
  options: HYDRA_OPTIONS,
  defaultLr: { value: 3e-3, source: "LoRA's (PEFT's causal-LM LoRA example): Hydra's branches are LoRA factors with LoRA's init and scaling" },
  parseConfig: parseHydraConfig,
  selectModules: (c, modules) => selectTargets(c, modules.filter((m) => m.kind === 'linear')),
  createParams: createHydraParams,
  linear: hydraLinear,
  merge: mergeHydra,
  mergeBias: mergeHydraBias,
  // Both B's write the output rows; the sequential A reads them.
  outputRowKeys: /\.hydra_(par|seq)_B\.weight$/,
  outputColumnKeys: /\.hydra_seq_A\.weight$/,
  toPeftConfig: toHydraJson,
  fromPeftConfig: fromHydraJson,
};
export type { HydraConfig } from './config.js';
