/** Prompt tuning: learned virtual-token embeddings before the input; nothing else changes. */
import type { AdapterMethod } from '../types.js';
import { type PromptTuningConfig, PROMPT_TUNING_OPTIONS, fromPeftPromptTuningConfig, parsePromptTuningConfig, toPeftPromptTuningConfig } from './config.js';
import { createPromptParams, promptEmbeddings } from './layer.js';

export const promptTuning: AdapterMethod<PromptTuningConfig> = {
  name: 'prompt-tuning',
  peftType: 'PROMPT_TUNING',
  options: PROMPT_TUNING_OPTIONS,
  defaultLr: { value: 3e-2, source: "PEFT's causal-LM prompt tuning example (examples/causal_language_modeling/peft_prompt_tuning_clm.ipynb: lr = 3e-2)" },
  parseConfig: parsePromptTuningConfig,
  // It adapts no module: the prompt sits before the input.
  selectModules: () => [],
  createParams: createPromptParams,
  embeddings: promptEmbeddings,
  virtualTokens: (c) => c.numVirtualTokens,
  // PEFT saves prompt learning tensors under bare names.
  fileKeyPrefix: '',
  toPeftConfig: toPeftPromptTuningConfig,
  fromPeftConfig: fromPeftPromptTuningConfig,
};
export type { PromptTuningConfig } from './config.js';
