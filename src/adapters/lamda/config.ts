/** LaMDA's and LaMDA++'s options, and their adapter_config.json (a format of this library: PEFT has no LaMDA). */
import { bool, checkKeys, layers, num, oneOf, targets } from '../config-utils.js';
import type { TargetConfig } from '../types.js';

export type LamdaInit = 'svd' | 'random';

export interface LamdaConfig extends TargetConfig {
  /** Rank r of the path (LaMDA++: the average rank). */
  r: number;
  /** α in Y = XW + α·X·A·S·B. */
  scale: number;
  /** 'svd': PMA and PMB from the top-r singular vectors of W, S = 0; 'random': PMA Kaiming-uniform, PMB = 0, S Kaiming-uniform. */
  initMethod: LamdaInit;
  /** t_i: PMB is fully frozen after this many steps (default: 30% of the run). */
  freezeSteps?: number;
  /** LaMDA++: ranks per module from the normalised spectra of the pre-trained weights. */
  adaptiveRank: boolean;
  /** LaMDA++'s ranks by module, set when the adapter is created (or read from a saved one). */
  rankPattern?: Record<string, number>;
}

export const LAMDA_OPTIONS: Readonly<Record<string, string>> = {
  r: 'rank of the low-dimensional path; with adaptiveRank the average rank (default 8)',
  scale: 'α in Y = XW + α·XASB (default 1)',
  initMethod: 'svd (projections from the singular vectors of W, S = 0; default) | random',
  freezeSteps: 't_i: steps after which PMB is fully frozen, one singular direction at a time (default: 30% of the run)',
  adaptiveRank: 'LaMDA++: allocate ranks by the normalised spectra of the pre-trained weights (default false)',
  targetModules: "modules to adapt: names or suffixes, or 're:<regex>' (default: all seven projections)",
  layersToTransform: 'only these layer indices, comma-separated (default: all)',
};

export const LAMDA_PEFT_TYPE = 'LAMDA';
const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

export function parseLamdaConfig(raw: Readonly<Record<string, unknown>>): LamdaConfig {
  const m = 'lamda';
  checkKeys(m, raw, [...Object.keys(LAMDA_OPTIONS), 'rankPattern']);
  const lt = layers(m, raw);
  const c: LamdaConfig = {
    r: num(m, raw, 'r', 8, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'),
    scale: num(m, raw, 'scale', 1, (v) => v > 0, 'a positive number'),
    initMethod: oneOf(m, raw, 'initMethod', 'svd', ['svd', 'random'] as const),
    adaptiveRank: bool(m, raw, 'adaptiveRank', false),
    targetModules: targets(m, raw, ALL),
    ...(lt ? { layersToTransform: lt } : {}),
  };
  if (raw.freezeSteps !== undefined && raw.freezeSteps !== null) c.freezeSteps = num(m, raw, 'freezeSteps', 0, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  if (raw.rankPattern !== undefined && raw.rankPattern !== null) {
    const p = raw.rankPattern;
    if (typeof p !== 'object' || Array.isArray(p) || !Object.values(p).every((v) => Number.isInteger(v) && (v as number) >= 1)) throw new Error('lamda: rankPattern must map modules to ranks ≥ 1');
    c.rankPattern = p as Record<string, number>;
  }
  return c;
}

export function toLamdaJson(c: LamdaConfig): Record<string, unknown> {
  return {
    peft_type: LAMDA_PEFT_TYPE, task_type: 'CAUSAL_LM', r: c.r, scale: c.scale, init_method: c.initMethod,
    freeze_steps: c.freezeSteps ?? null, adaptive_rank: c.adaptiveRank, rank_pattern: c.rankPattern ?? null,
    target_modules: c.targetModules, layers_to_transform: c.layersToTransform ?? null, inference_mode: true,
  };
}

export function fromLamdaJson(j: Readonly<Record<string, unknown>>): LamdaConfig {
  if (j.peft_type !== LAMDA_PEFT_TYPE) throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "${LAMDA_PEFT_TYPE}"`);
  const lt = j.layers_to_transform;
  return parseLamdaConfig({
    r: j.r ?? 8, scale: j.scale ?? 1, initMethod: j.init_method ?? 'svd', freezeSteps: j.freeze_steps ?? undefined,
    adaptiveRank: j.adaptive_rank ?? false, rankPattern: j.rank_pattern ?? undefined, targetModules: j.target_modules ?? ALL,
    ...(Array.isArray(lt) ? { layersToTransform: lt } : typeof lt === 'number' ? { layersToTransform: [lt] } : {}),
  });
}
