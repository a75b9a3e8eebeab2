/** LoRA's options, with Hugging Face PEFT's defaults and adapter_config.json keys. */
import { bool, checkKeys, layers, num, oneOf, targets } from '../config-utils.js';
import type { TargetConfig } from '../types.js';

export type LoraInit = 'default' | 'gaussian' | 'pissa';

export interface LoraConfig extends TargetConfig {
  /** Rank r of ΔW = B·A. */
  r: number;
  /** Scaling numerator: ΔW is multiplied by alpha/r (alpha/√r with useRslora). */
  alpha: number;
  /** Dropout rate on the adapter's input (training only). */
  dropout: number;
  /** rsLoRA scaling alpha/√r (Kalajdzievski, 2023), stable across ranks. */
  useRslora: boolean;
  /** 'default': A Kaiming-uniform, B zero (ΔW = 0 at start); 'gaussian': A ~ N(0, 1/r²), B zero; 'pissa': principal singular vectors of W (Meng et al., 2024), base weight becomes the residual. */
  init: LoraInit;
  /** DoRA (Liu et al., 2024): a learned magnitude per output row times the direction of W + ΔW. */
  useDora: boolean;
}

export const LORA_OPTIONS: Readonly<Record<string, string>> = {
  r: 'rank of the update ΔW = B·A (default 8)',
  alpha: 'scaling numerator: ΔW · alpha/r (default 8, as PEFT)',
  dropout: 'dropout rate on the adapter input while training (default 0)',
  targetModules: "modules to adapt: names or suffixes (q_proj,v_proj), or 're:<regex>' over full names (default q_proj,v_proj)",
  layersToTransform: 'only these layer indices, comma-separated (default: all)',
  useRslora: 'rsLoRA scaling alpha/√r (default false)',
  init: 'default (A Kaiming-uniform, B zero) | gaussian | pissa',
  useDora: 'DoRA: learned per-row magnitude times the normalised direction (default false)',
};

export function parseLoraConfig(raw: Readonly<Record<string, unknown>>): LoraConfig {
  const m = 'lora';
  checkKeys(m, raw, Object.keys(LORA_OPTIONS));
  const lt = layers(m, raw);
  return {
    r: num(m, raw, 'r', 8, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'),
    alpha: num(m, raw, 'alpha', 8, (v) => v > 0, 'a positive number'),
    dropout: num(m, raw, 'dropout', 0, (v) => v >= 0 && v < 1, 'in [0, 1)'),
    targetModules: targets(m, raw, ['q_proj', 'v_proj']),
    ...(lt ? { layersToTransform: lt } : {}),
    useRslora: bool(m, raw, 'useRslora', false),
    init: oneOf(m, raw, 'init', 'default', ['default', 'gaussian', 'pissa'] as const),
    useDora: bool(m, raw, 'useDora', false),
  };
}

export function loraScaling(c: Pick<LoraConfig, 'alpha' | 'r' | 'useRslora'>): number {
  return c.useRslora ? c.alpha / Math.sqrt(c.r) : c.alpha / c.r;
}

export function toPeftLoraConfig(c: LoraConfig): Record<string, unknown> {
  return {
    peft_type: 'LORA', task_type: 'CAUSAL_LM', r: c.r, lora_alpha: c.alpha, lora_dropout: c.dropout,
    target_modules: c.targetModules, layers_to_transform: c.layersToTransform ?? null, use_rslora: c.useRslora,
    use_dora: c.useDora, init_lora_weights: c.init === 'default' ? true : c.init, bias: 'none', fan_in_fan_out: false,
    inference_mode: true, modules_to_save: null, rank_pattern: {}, alpha_pattern: {},
  };
}

export function fromPeftLoraConfig(j: Readonly<Record<string, unknown>>): LoraConfig {
  if (j.peft_type !== 'LORA') throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "LORA"`);
  if (j.bias !== undefined && j.bias !== 'none') throw new Error(`adapter_config.json: bias "${String(j.bias)}" is not supported (only "none")`);
  if (j.rank_pattern && Object.keys(j.rank_pattern as object).length) throw new Error('adapter_config.json: rank_pattern is not supported for LoRA adapters yet');
  const init = j.init_lora_weights;
  return parseLoraConfig({
    r: j.r ?? 8, alpha: j.lora_alpha ?? 8, dropout: j.lora_dropout ?? 0,
    targetModules: j.target_modules ?? ['q_proj', 'v_proj'],
    ...(Array.isArray(j.layers_to_transform) ? { layersToTransform: j.layers_to_transform } : typeof j.layers_to_transform === 'number' ? { layersToTransform: [j.layers_to_transform] } : {}),
    useRslora: j.use_rslora ?? false, useDora: j.use_dora ?? false,
    init: init === 'gaussian' || init === 'pissa' ? init : 'default',
  });
}
