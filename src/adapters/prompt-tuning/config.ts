/** Prompt tuning's options, with Hugging Face PEFT's adapter_config.json keys. */
import { checkKeys, num, oneOf } from '../config-utils.js';
import type { TargetConfig } from '../types.js';

export type PromptInit = 'random' | 'text' | 'vocab';

export interface PromptTuningConfig extends TargetConfig {
  /** Virtual tokens prepended to every sequence. */
  numVirtualTokens: number;
  /** 'random': uniform in [−0.5, 0.5]; 'text': the embeddings of initText's tokens (repeated to length); 'vocab': of random vocabulary tokens (PEFT prompt_tuning_init). */
  promptInit: PromptInit;
  initText?: string;
}

export const PROMPT_TUNING_OPTIONS: Readonly<Record<string, string>> = {
  numVirtualTokens: 'virtual tokens prepended to every sequence (default 20)',
  promptInit: 'random (uniform ±0.5; default) | text (embeddings of initText, repeated; the default when initText is given) | vocab (embeddings of random vocabulary tokens)',
  initText: 'the text whose token embeddings initialise the prompt (init text)',
};

const PEFT_INIT: Record<PromptInit, string> = { random: 'RANDOM', text: 'TEXT', vocab: 'SAMPLE_VOCAB' };

export function parsePromptTuningConfig(raw: Readonly<Record<string, unknown>>): PromptTuningConfig {
  const m = 'prompt-tuning';
  checkKeys(m, raw, Object.keys(PROMPT_TUNING_OPTIONS));
  const init = oneOf(m, raw, 'promptInit', raw.initText !== undefined ? 'text' : 'random', ['random', 'text', 'vocab'] as const);
  if (init === 'text' && (typeof raw.initText !== 'string' || raw.initText.trim() === '')) throw new Error(`${m}: promptInit 'text' needs a non-empty initText`);
  return {
    numVirtualTokens: num(m, raw, 'numVirtualTokens', 20, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'),
    promptInit: init,
    ...(init === 'text' ? { initText: raw.initText as string } : {}),
    targetModules: [],
  };
}

export function toPeftPromptTuningConfig(c: PromptTuningConfig, model: { dim: number; nHeads: number; nLayers: number }): Record<string, unknown> {
  return {
    peft_type: 'PROMPT_TUNING', task_type: 'CAUSAL_LM', num_virtual_tokens: c.numVirtualTokens, token_dim: model.dim,
    num_transformer_submodules: 1, num_attention_heads: model.nHeads, num_layers: model.nLayers,
    prompt_tuning_init: PEFT_INIT[c.promptInit], prompt_tuning_init_text: c.initText ?? null, tokenizer_name_or_path: null, inference_mode: true,
  };
}

export function fromPeftPromptTuningConfig(j: Readonly<Record<string, unknown>>): PromptTuningConfig {
  if (j.peft_type !== 'PROMPT_TUNING') throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "PROMPT_TUNING"`);
  if (j.num_transformer_submodules !== undefined && j.num_transformer_submodules !== 1) throw new Error('adapter_config.json: num_transformer_submodules must be 1 for a decoder-only model');
  const init = (Object.keys(PEFT_INIT) as PromptInit[]).find((k) => PEFT_INIT[k] === j.prompt_tuning_init) ?? 'random';
  // The saved embeddings replace whatever the init was, so a text init without its text loads as random.
  const text = typeof j.prompt_tuning_init_text === 'string' && j.prompt_tuning_init_text ? j.prompt_tuning_init_text : undefined;
  return parsePromptTuningConfig({ numVirtualTokens: j.num_virtual_tokens ?? 20, promptInit: init === 'text' && !text ? 'random' : init, ...(text ? { initText: text } : {}) });
}
