/**
 * Base-weight training methods by name (`adaptkit train --method NAME`): adding a method means adding its
 * folder and one line here.
 */
import { FULL } from './full/index.js';
import { GALORE } from './galore/index.js';
import { GRAFT } from './graft/index.js';
import { GREENTRAINER } from './greentrainer/index.js';
import { HFT } from './hft/index.js';
import { LISA } from './lisa/index.js';
import { LT_SFT } from './lt-sft/index.js';
import { QGALORE } from './q-galore/index.js';
import type { UpdaterEntry } from './registry-types.js';
import { SPIEL } from './spiel/index.js';

export const UPDATERS: Readonly<Record<string, UpdaterEntry>> = {
  full: FULL,
  lisa: LISA,
  hft: HFT,
  greentrainer: GREENTRAINER,
  spiel: SPIEL,
  'lt-sft': LT_SFT,
  graft: GRAFT,
  galore: GALORE,
  'q-galore': QGALORE,
};

export type { UpdaterEntry, UpdaterOption, UpdaterOptionValues, UpdaterRun } from './registry-types.js';
export { type BaseTrainOptions, type BaseTrainResult, baseTensors, trainBaseWeights } from './train.js';
export type { BaseTensorInfo, TensorOptimizer, TensorOptimizerHyper, Updater, UpdaterContext } from './types.js';
