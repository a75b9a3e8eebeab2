/** Bottleneck adapters (Houlsby / Pfeiffer placement, sequential / parallel connection) on block outputs. */
import { selectTargets, sublayerModules } from '../targets.js';
import type { AdapterMethod } from '../types.js';
import { type BottleneckConfig, BOTTLENECK_OPTIONS, BOTTLENECK_PEFT_TYPE, bottleneckRaw, parseBottleneckConfig, toBottleneckJson } from './config.js';
import { bottleneckLayer, createBottleneckParams } from './layer.js';

export const bottleneck: AdapterMethod<BottleneckConfig> = {
  name: 'bottleneck',
  peftType: BOTTLENECK_PEFT_TYPE,
  options: BOTTLENECK_OPTIONS,
  defaultLr: { value: 3e-3, source: "the largest value of the sweep in Houlsby et al. (2019, §3.1: {3e-5, 3e-4, 3e-3}), the one short runs need" },
  parseConfig: (raw) => parseBottleneckConfig(raw),
  selectModules: (c, modules) => selectTargets(c, sublayerModules(modules)),
  createParams: createBottleneckParams,
  sublayer: bottleneckLayer,
  toPeftConfig: (c) => toBottleneckJson(c),
  fromPeftConfig: (j) => parseBottleneckConfig(bottleneckRaw(j)),
};
export type { BottleneckConfig } from './config.js';
