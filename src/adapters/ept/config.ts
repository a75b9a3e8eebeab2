/** EPT's options. PEFT has no EPT: adapter_config.json uses this library's `peft_type: "EPT"` and the keys below. */
import { checkKeys, num } from '../config-utils.js';
import type { TargetConfig } from '../types.js';

export interface EptConfig extends TargetConfig {
  /** Length of the short soft prompt. */
  numVirtualTokens: number;
  /** Rank of the low-rank update shared by the prompt and the input embeddings. */
  r: number;
  /** Number of projection subspaces the gate mixes. */
  numSpaces: number;
  /** Rank of each subspace's projection. */
  spaceRank: number;
}

export const EPT_OPTIONS: Readonly<Record<string, string>> = {
  numVirtualTokens: 'length of the short soft prompt (default 8)',
  r: 'rank of the low-rank update applied to the prompt and to every input embedding (default 4)',
  numSpaces: 'projection subspaces mixed by the gate (default 4)',
  spaceRank: 'rank of each subspace projection (default 4)',
};

const M = 'ept';
const positiveInt = (v: number) => Number.isInteger(v) && v >= 1;

export function parseEptConfig(raw: Readonly<Record<string, unknown>>): EptConfig {
  checkKeys(M, raw, Object.keys(EPT_OPTIONS));
  return {
    numVirtualTokens: num(M, raw, 'numVirtualTokens', 8, positiveInt, 'an integer ≥ 1'),
    r: num(M, raw, 'r', 4, positiveInt, 'an integer ≥ 1'),
    numSpaces: num(M, raw, 'numSpaces', 4, positiveInt, 'an integer ≥ 1'),
    spaceRank: num(M, raw, 'spaceRank', 4, positiveInt, 'an integer ≥ 1'),
    targetModules: [],
  };
}

export function toPeftEptConfig(c: EptConfig, model: { dim: number; nHeads: number; nLayers: number }): Record<string, unknown> {
  return {
    peft_type: 'EPT', task_type: 'CAUSAL_LM', num_virtual_tokens: c.numVirtualTokens, token_dim: model.dim,
    num_transformer_submodules: 1, num_attention_heads: model.nHeads, num_layers: model.nLayers,
    r: c.r, num_spaces: c.numSpaces, space_rank: c.spaceRank, inference_mode: true,
  };
}

export function fromPeftEptConfig(j: Readonly<Record<string, unknown>>): EptConfig {
  if (j.peft_type !== 'EPT') throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "EPT"`);
  return parseEptConfig({ numVirtualTokens: j.num_virtual_tokens, r: j.r, numSpaces: j.num_spaces, spaceRank: j.space_rank });
}
