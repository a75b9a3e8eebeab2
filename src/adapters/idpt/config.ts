/** IDPT's options. PEFT has no IDPT: adapter_config.json uses this library's `peft_type: "IDPT"` and the keys below. */
import { checkKeys, num } from '../config-utils.js';
import type { TargetConfig } from '../types.js';

export interface IdptConfig extends TargetConfig {
  /** Prompt tokens generated per instance. */
  numVirtualTokens: number;
  /** Width of the generator's hidden layer. */
  generatorHidden: number;
}

export const IDPT_OPTIONS: Readonly<Record<string, string>> = {
  numVirtualTokens: 'prompt tokens generated for each input (default 8)',
  generatorHidden: "hidden width of the prompt generator, an MLP from the input's representation (default 32)",
};

const M = 'idpt';
const positiveInt = (v: number) => Number.isInteger(v) && v >= 1;

export function parseIdptConfig(raw: Readonly<Record<string, unknown>>): IdptConfig {
  checkKeys(M, raw, Object.keys(IDPT_OPTIONS));
  return {
    numVirtualTokens: num(M, raw, 'numVirtualTokens', 8, positiveInt, 'an integer ≥ 1'),
    generatorHidden: num(M, raw, 'generatorHidden', 32, positiveInt, 'an integer ≥ 1'),
    targetModules: [],
  };
}

export function toPeftIdptConfig(c: IdptConfig, model: { dim: number; nHeads: number; nLayers: number }): Record<string, unknown> {
  return {
    peft_type: 'IDPT', task_type: 'CAUSAL_LM', num_virtual_tokens: c.numVirtualTokens, generator_hidden: c.generatorHidden,
    token_dim: model.dim, num_transformer_submodules: 1, num_attention_heads: model.nHeads, num_layers: model.nLayers, inference_mode: true,
  };
}

export function fromPeftIdptConfig(j: Readonly<Record<string, unknown>>): IdptConfig {
  if (j.peft_type !== 'IDPT') throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "IDPT"`);
  return parseIdptConfig({ numVirtualTokens: j.num_virtual_tokens, generatorHidden: j.generator_hidden });
}
