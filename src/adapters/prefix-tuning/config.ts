/** Prefix tuning's (and P-tuning v2's) options, with Hugging Face PEFT's adapter_config.json keys. */
import type { LlamaConfig } from '../../formats/checkpoint.js';
import { bool, checkKeys, num } from '../config-utils.js';
import type { TargetConfig } from '../types.js';

export interface PrefixTuningConfig extends TargetConfig {
  /** Prefix length P: key/value positions every layer attends to before the sequence. */
  numVirtualTokens: number;
  /** Reparameterise the prefix through an MLP while training (prefix tuning §4.3; PEFT prefix_projection). */
  projection: boolean;
  /** Hidden width of that MLP (default: the model width). */
  encoderHiddenSize?: number;
  /** σ of the N(0, σ²) init of the table (or of the MLP's input embedding); PEFT's is 1. */
  initStd: number;
}

export const PREFIX_TUNING_OPTIONS: Readonly<Record<string, string>> = {
  numVirtualTokens: 'prefix length: key/value positions every layer attends to (default 20)',
  projection: 'reparameterise the prefix with an MLP (embedding → Linear → tanh → Linear) while training (default false)',
  encoderHiddenSize: 'hidden width of the reparameterisation MLP (default: the model width)',
  initStd: 'σ of the N(0, σ²) initial prefix (or MLP input embedding); default 1 as PEFT, smaller starts closer to the base model',
};

export function parsePrefixTuningConfig(raw: Readonly<Record<string, unknown>>): PrefixTuningConfig {
  const m = 'prefix-tuning';
  checkKeys(m, raw, Object.keys(PREFIX_TUNING_OPTIONS));
  const c: PrefixTuningConfig = {
    numVirtualTokens: num(m, raw, 'numVirtualTokens', 20, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'),
    projection: bool(m, raw, 'projection', false),
    initStd: num(m, raw, 'initStd', 1, (v) => v > 0, 'a positive number'),
    targetModules: [],
  };
  if (raw.encoderHiddenSize !== undefined && raw.encoderHiddenSize !== null) c.encoderHiddenSize = num(m, raw, 'encoderHiddenSize', 0, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  return c;
}

/** PEFT's prefix layout: token_dim and heads are the key/value ones (grouped-query attention). */
export function toPeftPrefixTuningConfig(c: PrefixTuningConfig, model: LlamaConfig): Record<string, unknown> {
  const hd = model.dim / model.nHeads;
  return {
    peft_type: 'PREFIX_TUNING', task_type: 'CAUSAL_LM', num_virtual_tokens: c.numVirtualTokens, token_dim: model.nKvHeads * hd,
    num_transformer_submodules: 1, num_attention_heads: model.nKvHeads, num_layers: model.nLayers,
    prefix_projection: c.projection, encoder_hidden_size: c.encoderHiddenSize ?? model.dim, inference_mode: true,
  };
}

export function fromPeftPrefixTuningConfig(j: Readonly<Record<string, unknown>>): PrefixTuningConfig {
  if (j.peft_type !== 'PREFIX_TUNING') throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "PREFIX_TUNING"`);
  if (j.num_transformer_submodules !== undefined && j.num_transformer_submodules !== 1) throw new Error('adapter_config.json: num_transformer_submodules must be 1 for a decoder-only model');
  // A saved (inference-mode) adapter holds the prefix itself, whatever the MLP was while training.
  return parsePrefixTuningConfig({ numVirtualTokens: j.num_virtual_tokens ?? 20, projection: j.inference_mode === false ? j.prefix_projection ?? false : false });
}
