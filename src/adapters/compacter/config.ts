/** Compacter's options: a bottleneck adapter's (placement, connection…) plus its PHM layers' (format: this library's). */
import { bool, num } from '../config-utils.js';
import { BOTTLENECK_OPTIONS, type BottleneckConfig, bottleneckRaw, parseBottleneckConfig, toBottleneckJson } from '../bottleneck/config.js';

export interface CompacterConfig extends BottleneckConfig {
  /** n: Kronecker terms per projection; n × n "slow" rule matrices. Must divide the model and bottleneck widths. */
  phmDim: number;
  /** Rank of each "fast" factor B_i = s_i·t_i (1 in the paper's LPHM). */
  phmRank: number;
  /** One set of slow rule matrices for all adapter layers (the paper's sharing), else one per layer. */
  sharedPhmRule: boolean;
}

export const COMPACTER_OPTIONS: Readonly<Record<string, string>> = {
  ...BOTTLENECK_OPTIONS,
  phmDim: 'n: Kronecker terms per projection, n×n slow matrices; must divide the model and bottleneck widths (default 4)',
  phmRank: 'rank of the per-layer fast factors s_i·t_iᵀ (default 1)',
  sharedPhmRule: 'share the slow matrices A_i across all adapter layers (default true)',
};

export const COMPACTER_PEFT_TYPE = 'COMPACTER';

export function parseCompacterConfig(raw: Readonly<Record<string, unknown>>): CompacterConfig {
  const m = 'compacter';
  const base = parseBottleneckConfig(raw, m, ['phmDim', 'phmRank', 'sharedPhmRule']);
  return {
    ...base,
    phmDim: num(m, raw, 'phmDim', 4, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'),
    phmRank: num(m, raw, 'phmRank', 1, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'),
    sharedPhmRule: bool(m, raw, 'sharedPhmRule', true),
  };
}

export function toCompacterJson(c: CompacterConfig): Record<string, unknown> {
  return { ...toBottleneckJson(c, COMPACTER_PEFT_TYPE), phm_dim: c.phmDim, phm_rank: c.phmRank, shared_phm_rule: c.sharedPhmRule };
}

export function fromCompacterJson(j: Readonly<Record<string, unknown>>): CompacterConfig {
  return parseCompacterConfig({ ...bottleneckRaw(j, COMPACTER_PEFT_TYPE), phmDim: j.phm_dim ?? 4, phmRank: j.phm_rank ?? 1, sharedPhmRule: j.shared_phm_rule ?? true });
}
