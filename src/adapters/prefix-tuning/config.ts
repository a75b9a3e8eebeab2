/** Prefix tuning's (and P-tuning v2's) options, with Hugging Face PEFT's adapter_config.json keys. */
import type { LlamaConfig } from '../../formats/checkpoint.js';
import { bool, checkKeys, num, oneOf } from '../config-utils.js';
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
  /**
   * 'activations' (default): the table starts as the keys and values the model computes for the last P
   * tokens of BOS + initText (Li & Liang §7.2: real-word activations start the model near itself);
   * 'random': N(0, initStd²) as PEFT. The MLP of `projection` always starts as PEFT's.
   */
  prefixInit: 'activations' | 'random';
  /** The text whose activations initialise the prefix (repeated when it has fewer than P tokens). */
  initText: string;
}

/**
 * A neutral preceding text: the prefix then reads as the end of an earlier document, which a model trained
 * on concatenated documents has seen before every row's BOS.
 */
export const DEFAULT_PREFIX_TEXT = 'The end. This is where the story ends, and the next story begins.';

export const PREFIX_TUNING_OPTIONS: Readonly<Record<string, string>> = {
  numVirtualTokens: 'prefix length: key/value positions every layer attends to (default 20)',
  projection: 'reparameterise the prefix with an MLP (embedding → Linear → tanh → Linear) while training (default false)',
  encoderHiddenSize: 'hidden width of the reparameterisation MLP (default: the model width)',
  initStd: "σ of the N(0, σ²) initial prefix with prefixInit 'random' (or of the MLP's input embedding); default 1 as PEFT",
  prefixInit: "activations (default: the model's own keys and values for initText, so training starts at the base model's loss) | random (N(0, initStd²), as PEFT)",
  initText: `the text whose keys and values initialise the prefix (default ${JSON.stringify(DEFAULT_PREFIX_TEXT)})`,
};

export function parsePrefixTuningConfig(raw: Readonly<Record<string, unknown>>): PrefixTuningConfig {
  const m = 'prefix-tuning';
  checkKeys(m, raw, Object.keys(PREFIX_TUNING_OPTIONS));
  const c: PrefixTuningConfig = {
    numVirtualTokens: num(m, raw, 'numVirtualTokens', 20, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'),
    projection: bool(m, raw, 'projection', false),
    initStd: num(m, raw, 'initStd', 1, (v) => v > 0, 'a positive number'),
    prefixInit: oneOf(m, raw, 'prefixInit', 'activations', ['activations', 'random'] as const),
    initText: typeof raw.initText === 'string' ? raw.initText : DEFAULT_PREFIX_TEXT,
    targetModules: [],
  };
  if (raw.initText !== undefined && (typeof raw.initText !== 'string' || raw.initText.trim() === '')) throw new Error(`${m}: option 'initText' must be a non-empty text (got ${JSON.stringify(raw.initText)})`);
  if (raw.encoderHiddenSize !== undefined && raw.encoderHiddenSize !== null) c.encoderHiddenSize = num(m, raw, 'encoderHiddenSize', 0, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  return c;
}

/** PEFT's prefix layout: token_dim and heads are the key/value ones (grouped-query attention). */
export function toPeftPrefixTuningConfig(c: PrefixTuningConfig, model: LlamaConfig): Record<string, unknown> {
  const hd = model.headDim ?? model.dim / model.nHeads;
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
