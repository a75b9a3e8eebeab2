/** Context-aware prompt tuning's options, with Hugging Face PEFT's CPTConfig keys in adapter_config.json. */
import { checkKeys, num } from '../config-utils.js';
import type { TargetConfig } from '../types.js';

export interface CptConfig extends TargetConfig {
  /** The context's token ids: one virtual token per id, initialised to that token's embedding. */
  cptTokenIds: number[];
  /** PEFT's cpt_mask: 1 for every context token (kept for the folder; all ones here). */
  cptMask: number[];
  /**
   * Per context token, its role (PEFT's cpt_tokens_type_mask): 1 input template, 2 input, 3 output template,
   * 4 output label (modulo 4; larger values number the examples), 0 padding. Templates move within
   * projectionFormatEpsilon, inputs within projectionEpsilon; labels and padding stay fixed.
   */
  cptTokensTypeMask: number[];
  /** The text the context was encoded from, when it was given as text (resolved to cptTokenIds before use). */
  contextText?: string;
  /** Bound on each input token's change, before scaling by √(d/2048) (PEFT opt_projection_epsilon). */
  projectionEpsilon: number;
  /** Bound on each template token's change, before the same scaling (PEFT opt_projection_format_epsilon). */
  projectionFormatEpsilon: number;
}

export const CPT_OPTIONS: Readonly<Record<string, string>> = {
  contextText: 'the context (e.g. a few worked examples) whose tokens become the virtual tokens, encoded with the model\'s tokenizer without BOS; every token counts as input',
  cptTokenIds: 'the context as token ids instead of text (comma-separated on the command line)',
  cptTokensTypeMask: 'per context token: 1 input template, 2 input, 3 output template, 4 output label (kept fixed), 0 padding (default all 2)',
  cptMask: 'PEFT cpt_mask: 1 per context token (default all 1)',
  projectionEpsilon: 'largest L2 change of an input token\'s embedding, times √(d/2048) (default 0.1)',
  projectionFormatEpsilon: 'largest L2 change of a template token\'s embedding, times √(d/2048) (default 0.1)',
};

const M = 'cpt';

/** A list of integers from an array or a comma-separated string (command-line flags arrive as strings). */
function intList(raw: unknown, key: string, min: number): number[] | undefined {
  if (raw === undefined || raw === null) return undefined;
  const items = typeof raw === 'string' ? raw.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number) : raw;
  if (!Array.isArray(items) || items.length === 0 || !items.every((v) => typeof v === 'number' && Number.isInteger(v) && v >= min)) {
    throw new Error(`${M}: ${key} must be a non-empty list of integers ≥ ${min} (got ${JSON.stringify(raw)})`);
  }
  return items as number[];
}

export function parseCptConfig(raw: Readonly<Record<string, unknown>>): CptConfig {
  checkKeys(M, raw, Object.keys(CPT_OPTIONS));
  const ids = intList(raw.cptTokenIds, 'cptTokenIds', 0);
  const text = raw.contextText;
  if (text !== undefined && (typeof text !== 'string' || text.trim() === '')) throw new Error(`${M}: contextText must be a non-empty string`);
  if (!ids && text === undefined) throw new Error(`${M}: the context is missing: give contextText (--context-text) or cptTokenIds (--cpt-token-ids)`);
  if (ids && text !== undefined) throw new Error(`${M}: give contextText or cptTokenIds, not both`);
  const types = intList(raw.cptTokensTypeMask, 'cptTokensTypeMask', 0);
  const mask = intList(raw.cptMask, 'cptMask', 0);
  if (text !== undefined && (types || mask)) throw new Error(`${M}: cptTokensTypeMask and cptMask go with cptTokenIds, not with contextText (whose tokens are all inputs)`);
  const n = ids?.length ?? 0;
  if (types && types.length !== n) throw new Error(`${M}: cptTokensTypeMask has ${types.length} entries for ${n} context tokens`);
  if (mask && mask.length !== n) throw new Error(`${M}: cptMask has ${mask.length} entries for ${n} context tokens`);
  const eps = (key: string) => num(M, raw, key, 0.1, (v) => v >= 0 && Number.isFinite(v), 'a finite number ≥ 0');
  return {
    cptTokenIds: ids ?? [],
    cptMask: mask ?? new Array<number>(n).fill(1),
    cptTokensTypeMask: types ?? new Array<number>(n).fill(2),
    ...(typeof text === 'string' ? { contextText: text } : {}),
    projectionEpsilon: eps('projectionEpsilon'),
    projectionFormatEpsilon: eps('projectionFormatEpsilon'),
    targetModules: [],
  };
}

export function toPeftCptConfig(c: CptConfig, model: { dim: number; nHeads: number; nLayers: number }): Record<string, unknown> {
  return {
    peft_type: 'CPT', task_type: 'CAUSAL_LM', num_virtual_tokens: c.cptTokenIds.length, token_dim: model.dim,
    num_transformer_submodules: 1, num_attention_heads: model.nHeads, num_layers: model.nLayers,
    cpt_token_ids: c.cptTokenIds, cpt_mask: c.cptMask, cpt_tokens_type_mask: c.cptTokensTypeMask,
    // The loss here is the task loss on the training data (see README): recorded as PEFT's plain setting.
    opt_weighted_loss_type: 'none', opt_loss_decay_factor: 1.0,
    opt_projection_epsilon: c.projectionEpsilon, opt_projection_format_epsilon: c.projectionFormatEpsilon,
    tokenizer_name_or_path: null, inference_mode: true,
  };
}

export function fromPeftCptConfig(j: Readonly<Record<string, unknown>>): CptConfig {
  if (j.peft_type !== 'CPT') throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "CPT"`);
  if (j.num_transformer_submodules !== undefined && j.num_transformer_submodules !== 1) throw new Error('adapter_config.json: num_transformer_submodules must be 1 for a decoder-only model');
  const c = parseCptConfig({
    cptTokenIds: j.cpt_token_ids, cptMask: j.cpt_mask ?? undefined, cptTokensTypeMask: j.cpt_tokens_type_mask ?? undefined,
    ...(j.opt_projection_epsilon !== undefined ? { projectionEpsilon: j.opt_projection_epsilon } : {}),
    ...(j.opt_projection_format_epsilon !== undefined ? { projectionFormatEpsilon: j.opt_projection_format_epsilon } : {}),
  });
  if (j.num_virtual_tokens !== undefined && j.num_virtual_tokens !== c.cptTokenIds.length) {
    throw new Error(`adapter_config.json: num_virtual_tokens ${String(j.num_virtual_tokens)} differs from the ${c.cptTokenIds.length} cpt_token_ids`);
  }
  return c;
}
