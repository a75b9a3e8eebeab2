/** Hydra's options and its adapter_config.json (a format of this library: PEFT has no Hydra). */
import { checkKeys, layers, num, targets } from '../config-utils.js';
import type { TargetConfig } from '../types.js';

export interface HydraConfig extends TargetConfig {
  /** Rank of both branches. */
  r: number;
  /** Output multiplier of both branches (the authors' code uses 1). */
  scale: number;
  /** Dropout rate on the parallel branch's input (training only). */
  branchDropout: number;
}

export const HYDRA_OPTIONS: Readonly<Record<string, string>> = {
  r: 'rank of the parallel and the sequential branch (default 8)',
  scale: 'multiplier of both branches (default 1, as the authors\' code)',
  branchDropout: 'dropout rate on the parallel branch input while training (default 0)',
  targetModules: "modules to adapt: names or suffixes, or 're:<regex>' (default q_proj,v_proj)",
  layersToTransform: 'only these layer indices, comma-separated (default: all)',
};

export const HYDRA_PEFT_TYPE = 'HYDRA';

export function parseHydraConfig(raw: Readonly<Record<string, unknown>>): HydraConfig {
  const m = 'hydra';
  checkKeys(m, raw, Object.keys(HYDRA_OPTIONS));
  const lt = layers(m, raw);
  return {
    r: num(m, raw, 'r', 8, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'),
    scale: num(m, raw, 'scale', 1, (v) => v > 0, 'a positive number'),
    branchDropout: num(m, raw, 'branchDropout', 0, (v) => v >= 0 && v < 1, 'in [0, 1)'),
    targetModules: targets(m, raw, ['q_proj', 'v_proj']),
    ...(lt ? { layersToTransform: lt } : {}),
  };
}

export function toHydraJson(c: HydraConfig): Record<string, unknown> {
  return {
    peft_type: HYDRA_PEFT_TYPE, task_type: 'CAUSAL_LM', r: c.r, scale: c.scale, branch_dropout: c.branchDropout,
    target_modules: c.targetModules, layers_to_transform: c.layersToTransform ?? null, inference_mode: true,
  };
}

export function fromHydraJson(j: Readonly<Record<string, unknown>>): HydraConfig {
  if (j.peft_type !== HYDRA_PEFT_TYPE) throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "${HYDRA_PEFT_TYPE}"`);
  const lt = j.layers_to_transform;
  return parseHydraConfig({
    r: j.r ?? 8, scale: j.scale ?? 1, branchDropout: j.branch_dropout ?? 0, targetModules: j.target_modules ?? ['q_proj', 'v_proj'],
    ...(Array.isArray(lt) ? { layersToTransform: lt } : typeof lt === 'number' ? { layersToTransform: [lt] } : {}),
  });
}
