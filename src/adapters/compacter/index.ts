/** Compacter: bottleneck adapters whose projections are sums of Kronecker products (shared slow, per-layer fast). */
import { sublayerModules, selectTargets } from '../targets.js';
import type { AdapterMethod } from '../types.js';
import { type CompacterConfig, COMPACTER_OPTIONS, COMPACTER_PEFT_TYPE, fromCompacterJson, parseCompacterConfig, toCompacterJson } from './config.js';
import { compacterLayer, createCompacterParams } from './layer.js';

export const compacter: AdapterMethod<CompacterConfig> = {
  name: 'compacter',
  peftType: COMPACTER_PEFT_TYPE,
  options: COMPACTER_OPTIONS,
  defaultLr: { value: 1e-2, source: "measured on the methods benchmark (names-task, 40 steps): 1e-2 ends 0.03 below the base, 3e-3 only 0.016" },
  parseConfig: parseCompacterConfig,
  selectModules: (c, modules) => selectTargets(c, sublayerModules(modules)),
  createParams: createCompacterParams,
  sublayer: compacterLayer,
  toPeftConfig: toCompacterJson,
  fromPeftConfig: fromCompacterJson,
};
export type { CompacterConfig } from './config.js';
export { phmWeight } from './layer.js';
