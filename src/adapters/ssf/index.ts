/** SSF: per-channel scale and shift of linear outputs, merged into the layer (weight rows and bias). */
import { selectTargets } from '../targets.js';
import type { AdapterMethod } from '../types.js';
import { type SsfConfig, SSF_OPTIONS, SSF_PEFT_TYPE, fromSsfJson, parseSsfConfig, toSsfJson } from './config.js';
import { createSsfParams, mergeSsf, mergeSsfBias, ssfLinear } from './layer.js';

export const ssf: AdapterMethod<SsfConfig> = {
  name: 'ssf',
  peftType: SSF_PEFT_TYPE,
  options: SSF_OPTIONS,
  defaultLr: { value: 3e-3, source: "measured on the methods benchmark (names-task, 40 steps): 3e-3 beat 1e-2 and 3e-2; the SSF paper tunes vision models only" },
  parseConfig: parseSsfConfig,
  selectModules: (c, modules) => selectTargets(c, modules.filter((m) => m.kind === 'linear')),
  createParams: createSsfParams,
  linear: ssfLinear,
  merge: mergeSsf,
  mergeBias: mergeSsfBias,
  outputRowKeys: /\.ssf_(scale|shift)$/,
  toPeftConfig: toSsfJson,
  fromPeftConfig: fromSsfJson,
};
export type { SsfConfig } from './config.js';
