/** SSF: per-channel scale and shift of linear outputs, merged into the layer (weight rows and bias). */
import { selectTargets } from '../targets.js';
import type { AdapterMethod } from '../types.js';
import { type SsfConfig, SSF_OPTIONS, SSF_PEFT_TYPE, fromSsfJson, parseSsfConfig, toSsfJson } from './config.js';
import { createSsfParams, mergeSsf, mergeSsfBias, ssfLinear } from './layer.js';

export const ssf: AdapterMethod<SsfConfig> = {
  name: 'ssf',
  peftType: SSF_PEFT_TYPE,
  options: SSF_OPTIONS,
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
