/** (IA)³'s options, with Hugging Face PEFT's defaults and adapter_config.json keys. */
import { checkKeys, excludes, fromPeftTargets, layers, targets } from '../config-utils.js';
import type { ModuleInfo, TargetConfig } from '../types.js';

export interface Ia3Config extends TargetConfig {
  /**
   * Targets whose input is rescaled instead of their output (the feed-forward l_ff of the paper, which
   * scales the intermediate activation γ(W₁x) before W₂). Each must also be in targetModules.
   */
  feedforwardModules: string[];
}

export const IA3_OPTIONS: Readonly<Record<string, string>> = {
  targetModules: "modules to rescale: names or suffixes, or 're:<regex>' (default k_proj,v_proj,down_proj: keys, values and the FFN's intermediate activation)",
  feedforwardModules: 'targets whose input is rescaled instead of their output (default down_proj)',
  layersToTransform: 'only these layer indices, comma-separated (default: all)',
  excludeModules: "modules never rescaled even when targeted: names or suffixes, or 're:<regex>' (default none)",
};

const list = (v: unknown, key: string): string[] => {
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean);
  if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return v as string[];
  throw new Error(`ia3: option '${key}' must be a list of module names (got ${JSON.stringify(v)})`);
};

export function parseIa3Config(raw: Readonly<Record<string, unknown>>): Ia3Config {
  const m = 'ia3';
  checkKeys(m, raw, Object.keys(IA3_OPTIONS));
  const lt = layers(m, raw);
  const t = targets(m, raw, ['k_proj', 'v_proj', 'down_proj']);
  const ff = list(raw.feedforwardModules ?? ['down_proj'], 'feedforwardModules');
  if (Array.isArray(t)) {
    const outside = ff.filter((f) => !t.includes(f));
    if (outside.length) throw new Error(`ia3: feedforwardModules ${outside.join(', ')} must also be in targetModules (${t.join(', ')})`);
  }
  return { targetModules: t, feedforwardModules: ff, ...(lt ? { layersToTransform: lt } : {}), ...excludes(m, raw) };
}

/** Whether a targeted module rescales its input (PEFT: its name matches a feedforward_modules entry). */
export function isFeedforward(c: Ia3Config, module: string): boolean {
  return c.feedforwardModules.some((f) => module === f || module.endsWith(`.${f}`));
}

/**
 * PEFT's IA3Config has no layers_to_transform (it would warn and rescale every layer), so a layer selection
 * is written as the selected modules' full names, with the feed-forward ones among them.
 */
export function toPeftIa3Config(c: Ia3Config, _model: unknown, modules?: readonly ModuleInfo[]): Record<string, unknown> {
  const named = c.layersToTransform && modules;
  return {
    peft_type: 'IA3', task_type: 'CAUSAL_LM',
    target_modules: named ? modules.map((m) => m.name) : c.targetModules,
    feedforward_modules: named ? modules.filter((m) => isFeedforward(c, m.name)).map((m) => m.name) : c.feedforwardModules,
    // Only this library's own files (no modules given: training states) keep the selection as it was configured.
    ...(c.layersToTransform && !modules ? { layers_to_transform: c.layersToTransform } : {}),
    exclude_modules: c.excludeModules ?? null, fan_in_fan_out: false, init_ia3_weights: true, modules_to_save: null, inference_mode: true,
  };
}

export function fromPeftIa3Config(j: Readonly<Record<string, unknown>>): Ia3Config {
  if (j.peft_type !== 'IA3') throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "IA3"`);
  if (j.fan_in_fan_out === true) throw new Error('adapter_config.json: fan_in_fan_out is not supported for (IA)³ (Llama layers are not Conv1D)');
  const ff = j.feedforward_modules ?? ['down_proj'];
  if (typeof ff === 'string') throw new Error('adapter_config.json: a regex feedforward_modules is not supported for (IA)³; list the module names');
  return parseIa3Config({ ...fromPeftTargets(j, ['k_proj', 'v_proj', 'down_proj']), feedforwardModules: ff });
}
