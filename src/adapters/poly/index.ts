/** Poly / Multi-Head Routing (PEFT `POLY`): per-task routing over a small inventory of LoRA skills per module. */
import { selectTargets } from '../targets.js';
import type { AdapterMethod } from '../types.js';
import { type PolyConfig, POLY_OPTIONS, fromPeftPolyConfig, parsePolyConfig, toPeftPolyConfig } from './config.js';
import { createPolyParams, polyLinear, reorientPoly } from './layer.js';

export const poly: AdapterMethod<PolyConfig> = {
  name: 'poly',
  peftType: 'POLY',
  options: POLY_OPTIONS,
  defaultLr: { value: 3e-3, source: "LoRA's (PEFT's causal-LM LoRA example): each skill is a LoRA with LoRA's init, and a one-skill Poly is LoRA with scaling 1/r" },
  parseConfig: parsePolyConfig,
  selectModules: (c, modules) => selectTargets(c, modules.filter((m) => m.kind === 'linear')),
  createParams: createPolyParams,
  // MHR-z: the skills stay as they are; only the routing logits learn.
  trainable: (key, c) => c.polyMode !== 'z' || key.endsWith('.poly_router.module_logits'),
  linear: polyLinear,
  taskCount: (c) => c.polyTasks,
  reorient: reorientPoly,
  toPeftConfig: toPeftPolyConfig,
  fromPeftConfig: fromPeftPolyConfig,
};
export type { PolyConfig, PolyMode } from './config.js';
