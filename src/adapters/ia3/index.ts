/** (IA)³: learned rescaling of keys, values and the feed-forward intermediate activation. */
import { selectTargets } from '../targets.js';
import type { AdapterMethod } from '../types.js';
import { type Ia3Config, IA3_OPTIONS, fromPeftIa3Config, parseIa3Config, toPeftIa3Config } from './config.js';
import { createIa3Params, ia3Linear, mergeIa3, mergeIa3Bias } from './layer.js';

export const ia3: AdapterMethod<Ia3Config> = {
  name: 'ia3',
  peftType: 'IA3',
  options: IA3_OPTIONS,
  defaultLr: { value: 3e-3, source: "the T-Few recipe that introduced (IA)³ (Liu et al., 2022, \"Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context Learning\": learning rate 3e-3)" },
  parseConfig: parseIa3Config,
  selectModules: (c, modules) => selectTargets(c, modules.filter((m) => m.kind === 'linear')),
  createParams: createIa3Params,
  linear: ia3Linear,
  merge: mergeIa3,
  mergeBias: mergeIa3Bias,
  // An output-scaling vector [out, 1] follows the module's output rows; an input one [1, in] does not
  // (peft.ts only reorients tensors whose first axis has the output size).
  outputRowKeys: /\.ia3_l$/,
  toPeftConfig: toPeftIa3Config,
  fromPeftConfig: fromPeftIa3Config,
};
export type { Ia3Config } from './config.js';
