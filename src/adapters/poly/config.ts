/** Poly / MHR's options, with Hugging Face PEFT's defaults and adapter_config.json keys (PEFT `POLY`). */
import { bool, checkKeys, excludes, fromPeftTargets, layers, num, oneOf, targets } from '../config-utils.js';
import type { ModuleInfo, TargetConfig } from '../types.js';

/** 'poly': skills and routing train (Poly, or MHR with several splits); 'z': routing only, skills frozen (MHR-z). */
export type PolyMode = 'poly' | 'z';
export const POLY_MODES: readonly PolyMode[] = ['poly', 'z'];

export interface PolyConfig extends TargetConfig {
  /** Rank of every skill's LoRA. */
  r: number;
  /** Tasks the router has a row of logits for (PEFT n_tasks). */
  polyTasks: number;
  /** LoRA skills per module (PEFT n_skills). */
  polySkills: number;
  /** Heads each skill's A and B are cut into, routed separately (PEFT n_splits; more than 1 is MHR). */
  polySplits: number;
  /** What trains: see PolyMode. Not a PEFT field: kept only in this library's training states. */
  polyMode: PolyMode;
  /** PEFT init_weights: B starts at zero (true), or Kaiming-uniform like A (false). */
  initWeights: boolean;
}

export const POLY_OPTIONS: Readonly<Record<string, string>> = {
  r: 'rank of every skill (default 8)',
  polyTasks: 'tasks the router learns logits for; training rows need an integer "task" field below this (default 1)',
  polySkills: 'LoRA skills per module (default 4)',
  polySplits: 'heads each skill is cut into along its input and output features, each routed on its own: above 1 is Multi-Head Routing (MHR; default 1)',
  polyMode: 'poly: skills and routing train; z: only the routing trains, the skills stay frozen (MHR-z; use with --poly-from) (default poly)',
  initWeights: "B starts at zero (true, PEFT's default) or Kaiming-uniform like A (false)",
  targetModules: "modules to adapt: names or suffixes, or 're:<regex>' (default q_proj,v_proj, as PEFT's Llama mapping)",
  layersToTransform: 'only these layer indices, comma-separated (default: all)',
  excludeModules: "modules never adapted even when targeted: names or suffixes, or 're:<regex>' (default none)",
};

const count = (m: string, raw: Readonly<Record<string, unknown>>, key: string, fallback: number): number =>
  num(m, raw, key, fallback, (v) => Number.isSafeInteger(v) && v >= 1, 'an integer ≥ 1');

export function parsePolyConfig(raw: Readonly<Record<string, unknown>>): PolyConfig {
  const m = 'poly';
  checkKeys(m, raw, Object.keys(POLY_OPTIONS));
  const lt = layers(m, raw);
  return {
    r: count(m, raw, 'r', 8),
    polyTasks: count(m, raw, 'polyTasks', 1),
    polySkills: count(m, raw, 'polySkills', 4),
    polySplits: count(m, raw, 'polySplits', 1),
    polyMode: oneOf(m, raw, 'polyMode', 'poly', POLY_MODES),
    initWeights: bool(m, raw, 'initWeights', true),
    targetModules: targets(m, raw, ['q_proj', 'v_proj']),
    ...(lt ? { layersToTransform: lt } : {}),
    ...excludes(m, raw),
  };
}

/**
 * PEFT's PolyConfig has no layers_to_transform, so a layer selection is written as the selected modules'
 * full names. Without `modules` (this library's training states) the selection and the mode are kept as
 * configured, under keys PEFT does not read.
 */
export function toPeftPolyConfig(c: PolyConfig, _model: unknown, modules?: readonly ModuleInfo[]): Record<string, unknown> {
  const named = c.layersToTransform && modules;
  return {
    peft_type: 'POLY', task_type: 'CAUSAL_LM',
    r: c.r, target_modules: named ? modules.map((m) => m.name) : c.targetModules, exclude_modules: c.excludeModules ?? null,
    modules_to_save: null, init_weights: c.initWeights, poly_type: 'poly',
    n_tasks: c.polyTasks, n_skills: c.polySkills, n_splits: c.polySplits, inference_mode: true,
    ...(!modules && c.layersToTransform ? { layers_to_transform: c.layersToTransform } : {}),
    ...(!modules ? { poly_mode: c.polyMode } : {}),
  };
}

export function fromPeftPolyConfig(j: Readonly<Record<string, unknown>>): PolyConfig {
  if (j.peft_type !== 'POLY') throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "POLY"`);
  // PEFT's router factory accepts only "poly" (tuners/poly/router.py get_router).
  if (j.poly_type !== undefined && j.poly_type !== 'poly') throw new Error(`adapter_config.json: poly_type ${JSON.stringify(j.poly_type)} is not supported (PEFT knows only "poly")`);
  return parsePolyConfig({
    r: j.r ?? 8, polyTasks: j.n_tasks ?? 1, polySkills: j.n_skills ?? 4, polySplits: j.n_splits ?? 1,
    initWeights: j.init_weights ?? true, polyMode: j.poly_mode ?? 'poly',
    ...fromPeftTargets(j, ['q_proj', 'v_proj']),
  });
}
