/** EPT: a short soft prompt, a low-rank update shared with the input embeddings, and gated multi-space projections. */
import type { AdapterMethod } from '../types.js';
import { type EptConfig, EPT_OPTIONS, fromPeftEptConfig, parseEptConfig, toPeftEptConfig } from './config.js';
import { createEptParams, eptEmbeddings } from './layer.js';

export const ept: AdapterMethod<EptConfig> = {
  name: 'ept',
  peftType: 'EPT',
  options: EPT_OPTIONS,
  defaultLr: { value: 3e-2, source: 'prompt tuning\'s (PEFT\'s causal-LM prompt tuning example; the EPT paper tunes it per task)' },
  parseConfig: parseEptConfig,
  selectModules: () => [],
  createParams: createEptParams,
  embeddings: eptEmbeddings,
  virtualTokens: (c) => c.numVirtualTokens,
  // Prompt learning saves under bare names, as PEFT does for its prompt methods.
  fileKeyPrefix: '',
  toPeftConfig: toPeftEptConfig,
  fromPeftConfig: fromPeftEptConfig,
};
export type { EptConfig } from './config.js';
