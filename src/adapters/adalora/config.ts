/** AdaLoRA's options, with Hugging Face PEFT's defaults and adapter_config.json keys. */
import { checkKeys, excludes, fromPeftTargets, layers, num, peftTargets, targets } from '../config-utils.js';
import type { ModuleInfo, TargetConfig } from '../types.js';

export interface AdaloraConfig extends TargetConfig {
  /** Rank of every module's P·Λ·Q at the start (PEFT init_r). */
  initR: number;
  /** Average rank per module once the budget has shrunk (PEFT target_r): b(T) = targetR × modules. */
  targetR: number;
  /** Output scaling numerator: ΔW·x is multiplied by loraAlpha / initR (PEFT: lora_alpha / (ranknum + 1e-5)). */
  loraAlpha: number;
  loraDropout: number;
  /** Steps of warmup at the full budget before pruning starts (t_i); unset, scaled to the run (`adaloraSchedule`). */
  tinit?: number;
  /** Steps at the end with the final budget and fixed masks (t_f); unset, scaled to the run. */
  tfinal?: number;
  /** Steps between two budget allocations (ΔT); unset, scaled to the run. */
  deltaT?: number;
  /** EMA factor of the sensitivity (β₁, §3.2). */
  beta1: number;
  /** EMA factor of the uncertainty (β₂, §3.2). */
  beta2: number;
  /** γ of the orthogonality regulariser (§3.1). */
  orthRegWeight: number;
  /** T of the budget schedule; defaults to the run's number of steps. */
  totalStep?: number;
  /**
   * Lingo's adaptive rank sampling: at each allocation a pruned triplet comes back (its singular value from
   * zero) and a kept one is dropped, each with this probability (0: AdaLoRA exactly; `--method lingo`: 0.1).
   */
  rankSampling?: number;
  /** Kept triplets per module (PEFT rank_pattern), set by the rank allocator or read from a saved adapter. */
  rankPattern?: Record<string, boolean[]>;
}

export const ADALORA_OPTIONS: Readonly<Record<string, string>> = {
  initR: 'initial rank of every module (default 12)',
  targetR: 'average rank per module after budget pruning (default 8)',
  loraAlpha: 'scaling numerator: ΔW · loraAlpha/initR (default 8, as PEFT)',
  loraDropout: 'dropout rate on the adapter input while training (default 0)',
  targetModules: "modules to adapt: names or suffixes, or 're:<regex>' (default q_proj,v_proj)",
  layersToTransform: 'only these layer indices, comma-separated (default: all)',
  tinit: 'warmup steps at the full budget before pruning (t_i; default 10% of the run)',
  tfinal: 'final steps at the target budget with fixed masks (t_f; default 60% of the run)',
  deltaT: 'steps between two budget allocations (ΔT; default 0.1% of the run, at least 1)',
  beta1: 'EMA factor of the sensitivity (default 0.85)',
  beta2: 'EMA factor of the uncertainty (default 0.85)',
  orthRegWeight: 'weight γ of the orthogonality regulariser (default 0.5)',
  totalStep: 'T of the cubic budget schedule (default: the number of training steps)',
  rankSampling: "Lingo's rank sampling: probability that an allocation brings back a pruned triplet, and that it drops a kept one (default 0: AdaLoRA; 0.1 with --method lingo)",
  excludeModules: "modules never adapted even when targeted: names or suffixes, or 're:<regex>' (default none)",
};

const int = (v: number) => Number.isInteger(v) && v >= 0;

export function parseAdaloraConfig(raw: Readonly<Record<string, unknown>>): AdaloraConfig {
  const m = 'adalora';
  checkKeys(m, raw, [...Object.keys(ADALORA_OPTIONS), 'rankPattern']);
  const lt = layers(m, raw);
  const c: AdaloraConfig = {
    initR: num(m, raw, 'initR', 12, (v) => int(v) && v >= 1, 'an integer ≥ 1'),
    targetR: num(m, raw, 'targetR', 8, int, 'an integer ≥ 0'),
    loraAlpha: num(m, raw, 'loraAlpha', 8, (v) => v > 0, 'a positive number'),
    loraDropout: num(m, raw, 'loraDropout', 0, (v) => v >= 0 && v < 1, 'in [0, 1)'),
    targetModules: targets(m, raw, ['q_proj', 'v_proj']),
    ...(lt ? { layersToTransform: lt } : {}),
    beta1: num(m, raw, 'beta1', 0.85, (v) => v > 0 && v < 1, 'in (0, 1)'),
    beta2: num(m, raw, 'beta2', 0.85, (v) => v > 0 && v < 1, 'in (0, 1)'),
    orthRegWeight: num(m, raw, 'orthRegWeight', 0.5, (v) => v >= 0, 'a number ≥ 0'),
    ...excludes(m, raw),
  };
  if (raw.tinit !== undefined && raw.tinit !== null) c.tinit = num(m, raw, 'tinit', 0, int, 'an integer ≥ 0');
  if (raw.tfinal !== undefined && raw.tfinal !== null) c.tfinal = num(m, raw, 'tfinal', 0, int, 'an integer ≥ 0');
  if (raw.deltaT !== undefined && raw.deltaT !== null) c.deltaT = num(m, raw, 'deltaT', 1, (v) => int(v) && v >= 1, 'an integer ≥ 1');
  if (raw.totalStep !== undefined && raw.totalStep !== null) c.totalStep = num(m, raw, 'totalStep', 0, (v) => int(v) && v >= 1, 'an integer ≥ 1');
  if (raw.rankSampling !== undefined && raw.rankSampling !== null) c.rankSampling = num(m, raw, 'rankSampling', 0, (v) => v >= 0 && v < 1, 'in [0, 1)');
  if (c.targetR > c.initR) throw new Error(`adalora: targetR (${c.targetR}) cannot exceed initR (${c.initR})`);
  if (raw.rankPattern !== undefined && raw.rankPattern !== null) {
    const p = raw.rankPattern;
    if (typeof p !== 'object' || Array.isArray(p) || !Object.values(p).every((v) => Array.isArray(v) && v.length === c.initR && v.every((b) => typeof b === 'boolean'))) {
      throw new Error(`adalora: rankPattern must map modules to ${c.initR} booleans each`);
    }
    c.rankPattern = p as Record<string, boolean[]>;
  }
  return c;
}

export function toPeftAdaloraConfig(c: AdaloraConfig, _model: unknown, modules?: readonly ModuleInfo[]): Record<string, unknown> {
  return {
    // r is LoraConfig's and unused by AdaLoRA: PEFT warns unless it keeps its default 8 (init_r is the rank).
    peft_type: 'ADALORA', task_type: 'CAUSAL_LM', r: 8, lora_alpha: c.loraAlpha, lora_dropout: c.loraDropout,
    ...peftTargets(c, modules),
    target_r: c.targetR, init_r: c.initR, tinit: c.tinit ?? 0, tfinal: c.tfinal ?? 0, deltaT: c.deltaT ?? 1, beta1: c.beta1, beta2: c.beta2,
    // PEFT refuses a missing total_step and one that leaves no budgeting phase (tinit < total_step − tfinal);
    // before training has set it, the shortest schedule PEFT accepts (inference ignores it).
    orth_reg_weight: c.orthRegWeight, total_step: c.totalStep ?? (c.tinit ?? 0) + (c.tfinal ?? 0) + 1, rank_pattern: c.rankPattern ?? null,
    bias: 'none', fan_in_fan_out: false, init_lora_weights: true, use_dora: false, modules_to_save: null, inference_mode: true,
  };
}

export function fromPeftAdaloraConfig(j: Readonly<Record<string, unknown>>): AdaloraConfig {
  if (j.peft_type !== 'ADALORA') throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "ADALORA"`);
  if (j.bias !== undefined && j.bias !== 'none') throw new Error(`adapter_config.json: bias "${String(j.bias)}" is not supported (only "none")`);
  return parseAdaloraConfig({
    initR: j.init_r ?? 12, targetR: j.target_r ?? 8, loraAlpha: j.lora_alpha ?? 8, loraDropout: j.lora_dropout ?? 0,
    ...fromPeftTargets(j, ['q_proj', 'v_proj']),
    tinit: j.tinit ?? 0, tfinal: j.tfinal ?? 0, deltaT: j.deltaT ?? 1, beta1: j.beta1 ?? 0.85, beta2: j.beta2 ?? 0.85,
    orthRegWeight: j.orth_reg_weight ?? 0.5, totalStep: j.total_step ?? undefined, rankPattern: j.rank_pattern ?? undefined,
  });
}
