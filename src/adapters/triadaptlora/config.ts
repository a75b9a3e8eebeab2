/** TriAdaptLoRA's options (names after the authors' code) and its adapter_config.json (PEFT has no TriAdaptLoRA). */
import { checkKeys, layers, num, oneOf, targets } from '../config-utils.js';
import type { TargetConfig } from '../types.js';

export type RankGrowth = 'linear' | 'exponential';

export interface TriAdaptConfig extends TargetConfig {
  /** Average rank per module the growth aims at: the total budget is referenceRank × modules. */
  referenceRank: number;
  /** Rank of every module at the start. */
  initRank: number;
  /** Largest rank a module may grow to (its tensors are allocated at this size while training). */
  maxRank: number;
  /** Output scaling numerator: ΔW = loraAlpha / (r_k + 1e-5) · B·C·A with r_k the module's current rank. */
  loraAlpha: number;
  loraDropout: number;
  /** Steps before the first growth. */
  initWarmup: number;
  /** Steps between growth checks. */
  increInterval: number;
  /** Rank added to a module that grows (default referenceRank / 2). */
  increRankNum: number;
  /** How many modules may grow at step t: 'linear' (default) or 'exponential' in the training progress. */
  rankGrowth: RankGrowth;
  /** γ of the orthogonality regulariser on A and B. */
  orthRegWeight: number;
  /** T of the growth schedule; defaults to the run's number of steps. */
  totalStep?: number;
  /** Ranks by module, set while training or read from a saved adapter (which then keeps them). */
  rankPattern?: Record<string, number>;
}

export const TRIADAPT_OPTIONS: Readonly<Record<string, string>> = {
  referenceRank: 'average rank per module that growth aims at; budget = referenceRank × modules (default 8)',
  initRank: 'rank of every module at the start (default 1)',
  maxRank: 'largest rank one module may reach (default 2 × referenceRank, at most the module\'s smaller dimension)',
  loraAlpha: 'scaling numerator: ΔW · loraAlpha / (r_k + 1e-5), r_k the current rank (default 8)',
  loraDropout: 'dropout rate on the adapter input while training (default 0)',
  targetModules: "modules to adapt: names or suffixes, or 're:<regex>' (default q_proj,v_proj)",
  layersToTransform: 'only these layer indices, comma-separated (default: all)',
  initWarmup: 'steps before the first rank growth (default 0)',
  increInterval: 'steps between rank-growth checks (default 1)',
  increRankNum: 'rank added to a module that grows (default referenceRank / 2)',
  rankGrowth: 'threshold schedule: linear (default) | exponential',
  orthRegWeight: 'weight of the orthogonality regulariser on A and B (default 0.5)',
  totalStep: 'T of the growth schedule (default: the number of training steps)',
};

export const TRIADAPT_PEFT_TYPE = 'TRIADAPTLORA';
const int = (v: number) => Number.isInteger(v) && v >= 0;

export function parseTriAdaptConfig(raw: Readonly<Record<string, unknown>>): TriAdaptConfig {
  const m = 'triadaptlora';
  checkKeys(m, raw, [...Object.keys(TRIADAPT_OPTIONS), 'rankPattern']);
  const lt = layers(m, raw);
  const referenceRank = num(m, raw, 'referenceRank', 8, (v) => int(v) && v >= 1, 'an integer ≥ 1');
  const c: TriAdaptConfig = {
    referenceRank,
    initRank: num(m, raw, 'initRank', 1, (v) => int(v) && v >= 1, 'an integer ≥ 1'),
    maxRank: num(m, raw, 'maxRank', 2 * referenceRank, (v) => int(v) && v >= 1, 'an integer ≥ 1'),
    loraAlpha: num(m, raw, 'loraAlpha', 8, (v) => v > 0, 'a positive number'),
    loraDropout: num(m, raw, 'loraDropout', 0, (v) => v >= 0 && v < 1, 'in [0, 1)'),
    targetModules: targets(m, raw, ['q_proj', 'v_proj']),
    ...(lt ? { layersToTransform: lt } : {}),
    initWarmup: num(m, raw, 'initWarmup', 0, int, 'an integer ≥ 0'),
    increInterval: num(m, raw, 'increInterval', 1, (v) => int(v) && v >= 1, 'an integer ≥ 1'),
    increRankNum: num(m, raw, 'increRankNum', Math.max(1, Math.floor(referenceRank / 2)), (v) => int(v) && v >= 1, 'an integer ≥ 1'),
    rankGrowth: oneOf(m, raw, 'rankGrowth', 'linear', ['linear', 'exponential'] as const),
    orthRegWeight: num(m, raw, 'orthRegWeight', 0.5, (v) => v >= 0, 'a number ≥ 0'),
  };
  if (raw.totalStep !== undefined && raw.totalStep !== null) c.totalStep = num(m, raw, 'totalStep', 0, (v) => int(v) && v >= 1, 'an integer ≥ 1');
  if (c.initRank > c.maxRank) throw new Error(`${m}: initRank (${c.initRank}) cannot exceed maxRank (${c.maxRank})`);
  if (raw.rankPattern !== undefined && raw.rankPattern !== null) {
    const p = raw.rankPattern;
    if (typeof p !== 'object' || Array.isArray(p) || !Object.values(p).every((v) => Number.isInteger(v) && (v as number) >= 1)) throw new Error(`${m}: rankPattern must map modules to ranks ≥ 1`);
    c.rankPattern = p as Record<string, number>;
  }
  return c;
}

export function toTriAdaptJson(c: TriAdaptConfig): Record<string, unknown> {
  return {
    peft_type: TRIADAPT_PEFT_TYPE, task_type: 'CAUSAL_LM', reference_rank: c.referenceRank, init_rank: c.initRank, max_rank: c.maxRank,
    lora_alpha: c.loraAlpha, lora_dropout: c.loraDropout, target_modules: c.targetModules, layers_to_transform: c.layersToTransform ?? null,
    init_warmup: c.initWarmup, incre_interval: c.increInterval, incre_rank_num: c.increRankNum, rank_growth_model: c.rankGrowth,
    orth_reg_weight: c.orthRegWeight, total_step: c.totalStep ?? null, rank_pattern: c.rankPattern ?? null, inference_mode: true,
  };
}

export function fromTriAdaptJson(j: Readonly<Record<string, unknown>>): TriAdaptConfig {
  if (j.peft_type !== TRIADAPT_PEFT_TYPE) throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "${TRIADAPT_PEFT_TYPE}"`);
  const lt = j.layers_to_transform;
  return parseTriAdaptConfig({
    referenceRank: j.reference_rank ?? 8, initRank: j.init_rank ?? 1, maxRank: j.max_rank ?? undefined, loraAlpha: j.lora_alpha ?? 8,
    loraDropout: j.lora_dropout ?? 0, targetModules: j.target_modules ?? ['q_proj', 'v_proj'],
    ...(Array.isArray(lt) ? { layersToTransform: lt } : typeof lt === 'number' ? { layersToTransform: [lt] } : {}),
    initWarmup: j.init_warmup ?? 0, increInterval: j.incre_interval ?? 1, increRankNum: j.incre_rank_num ?? undefined,
    rankGrowth: j.rank_growth_model === 'non-linear' ? 'exponential' : j.rank_growth_model ?? 'linear', orthRegWeight: j.orth_reg_weight ?? 0.5,
    totalStep: j.total_step ?? undefined, rankPattern: j.rank_pattern ?? undefined,
  });
}
