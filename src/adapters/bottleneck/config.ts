/**
 * Bottleneck adapters' options (shared with Compacter, which only changes the projections) and their
 * adapter_config.json (a format of this library: PEFT has no bottleneck adapters).
 */
import { bool, checkKeys, layers, num, oneOf } from '../config-utils.js';
import type { TargetConfig } from '../types.js';

export type Placement = 'houlsby' | 'pfeiffer';
export type Connection = 'sequential' | 'parallel';
export type Activation = 'gelu' | 'silu';

export interface BottleneckConfig extends TargetConfig {
  /** 'houlsby': after the attention and the MLP block; 'pfeiffer': after the MLP block only. */
  placement: Placement;
  /** 'sequential': the adapter reads the block's output; 'parallel': the block's (normed) input, beside it. */
  connection: Connection;
  /** Keep the adapter's own skip connection (sequential: + block output; parallel: + block input). */
  residual: boolean;
  /** Bottleneck width = model width / reductionFactor. */
  reductionFactor: number;
  activation: Activation;
}

export const BOTTLENECK_OPTIONS: Readonly<Record<string, string>> = {
  placement: 'houlsby (after attention and MLP blocks; default) | pfeiffer (after MLP blocks only)',
  connection: 'sequential (adapter on the block output; default) | parallel (adapter on the block input, added beside it)',
  residual: "the adapter's own skip connection (default: true when sequential, false when parallel, as the AST study recommends)",
  reductionFactor: 'bottleneck width = model width / reductionFactor (default 16)',
  activation: 'gelu (default) | silu',
  layersToTransform: 'only these layer indices, comma-separated (default: all)',
};

/** The sublayer names a placement targets (`targetModules` is derived, not an option). */
export const placementTargets = (p: Placement): string[] => (p === 'houlsby' ? ['self_attn', 'attn', 'mlp'] : ['mlp']);

export function parseBottleneckConfig(raw: Readonly<Record<string, unknown>>, method = 'bottleneck', extra: readonly string[] = []): BottleneckConfig {
  checkKeys(method, raw, [...Object.keys(BOTTLENECK_OPTIONS), ...extra]);
  const lt = layers(method, raw);
  const placement = oneOf(method, raw, 'placement', 'houlsby', ['houlsby', 'pfeiffer'] as const);
  const connection = oneOf(method, raw, 'connection', 'sequential', ['sequential', 'parallel'] as const);
  return {
    placement, connection,
    residual: bool(method, raw, 'residual', connection === 'sequential'),
    reductionFactor: num(method, raw, 'reductionFactor', 16, (v) => v >= 1, 'a number ≥ 1'),
    activation: oneOf(method, raw, 'activation', 'gelu', ['gelu', 'silu'] as const),
    targetModules: placementTargets(placement),
    ...(lt ? { layersToTransform: lt } : {}),
  };
}

export const BOTTLENECK_PEFT_TYPE = 'BOTTLENECK';

export function toBottleneckJson(c: BottleneckConfig, peftType = BOTTLENECK_PEFT_TYPE): Record<string, unknown> {
  return {
    peft_type: peftType, task_type: 'CAUSAL_LM', placement: c.placement, connection: c.connection, residual: c.residual,
    reduction_factor: c.reductionFactor, activation: c.activation, layers_to_transform: c.layersToTransform ?? null, inference_mode: true,
  };
}

export function bottleneckRaw(j: Readonly<Record<string, unknown>>, peftType = BOTTLENECK_PEFT_TYPE): Record<string, unknown> {
  if (j.peft_type !== peftType) throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "${peftType}"`);
  const lt = j.layers_to_transform;
  return {
    placement: j.placement ?? 'houlsby', connection: j.connection ?? 'sequential', residual: j.residual ?? undefined,
    reductionFactor: j.reduction_factor ?? 16, activation: j.activation ?? 'gelu',
    ...(Array.isArray(lt) ? { layersToTransform: lt } : typeof lt === 'number' ? { layersToTransform: [lt] } : {}),
  };
}

/** The bottleneck width for a block of width d. */
export function bottleneckWidth(c: Pick<BottleneckConfig, 'reductionFactor'>, d: number): number {
  return Math.max(1, Math.round(d / c.reductionFactor));
}
