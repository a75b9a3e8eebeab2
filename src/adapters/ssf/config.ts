/** SSF's options and its adapter_config.json (a format of this library: PEFT has no SSF). */
import { checkKeys, layers, num, targets } from '../config-utils.js';
import type { TargetConfig } from '../types.js';

export interface SsfConfig extends TargetConfig {
  /** γ ~ N(1, σ²), β ~ N(0, σ²) at creation, as the paper's code; 0 starts exactly at the base model. */
  initStd: number;
}

export const SSF_OPTIONS: Readonly<Record<string, string>> = {
  targetModules: "linear modules whose outputs are scaled and shifted: names or suffixes, or 're:<regex>' (default: all seven projections)",
  layersToTransform: 'only these layer indices, comma-separated (default: all)',
  initStd: 'σ of the initial γ ~ N(1, σ²) and β ~ N(0, σ²) (default 0.02; 0: identity)',
};

export const SSF_PEFT_TYPE = 'SSF';
const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

export function parseSsfConfig(raw: Readonly<Record<string, unknown>>): SsfConfig {
  const m = 'ssf';
  checkKeys(m, raw, Object.keys(SSF_OPTIONS));
  const lt = layers(m, raw);
  return {
    targetModules: targets(m, raw, ALL),
    ...(lt ? { layersToTransform: lt } : {}),
    initStd: num(m, raw, 'initStd', 0.02, (v) => v >= 0, 'a number ≥ 0'),
  };
}

export function toSsfJson(c: SsfConfig): Record<string, unknown> {
  return { peft_type: SSF_PEFT_TYPE, task_type: 'CAUSAL_LM', target_modules: c.targetModules, layers_to_transform: c.layersToTransform ?? null, init_std: c.initStd, inference_mode: true };
}

export function fromSsfJson(j: Readonly<Record<string, unknown>>): SsfConfig {
  if (j.peft_type !== SSF_PEFT_TYPE) throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "${SSF_PEFT_TYPE}"`);
  const lt = j.layers_to_transform;
  return parseSsfConfig({
    targetModules: j.target_modules ?? ALL, initStd: j.init_std ?? 0.02,
    ...(Array.isArray(lt) ? { layersToTransform: lt } : typeof lt === 'number' ? { layersToTransform: [lt] } : {}),
  });
}
