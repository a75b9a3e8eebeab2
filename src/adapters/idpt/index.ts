/** IDPT: a small generator turns each input's representation into the prompt placed before it. */
import type { AdapterMethod } from '../types.js';
import { type IdptConfig, IDPT_OPTIONS, fromPeftIdptConfig, parseIdptConfig, toPeftIdptConfig } from './config.js';
import { instanceFeatures } from './instance.js';
import { createIdptParams, idptEmbeddings } from './layer.js';

export const idpt: AdapterMethod<IdptConfig> = {
  name: 'idpt',
  peftType: 'IDPT',
  options: IDPT_OPTIONS,
  defaultLr: { value: 3e-2, source: 'prompt tuning\'s (PEFT\'s causal-LM prompt tuning example; the IDPT paper tunes its own per task)' },
  parseConfig: parseIdptConfig,
  selectModules: () => [],
  createParams: createIdptParams,
  embeddings: idptEmbeddings,
  instance: (_c, table, dim, ids, targets, batch, seq) => instanceFeatures(table, dim, ids, targets, batch, seq),
  virtualTokens: (c) => c.numVirtualTokens,
  fileKeyPrefix: '',
  toPeftConfig: toPeftIdptConfig,
  fromPeftConfig: fromPeftIdptConfig,
};
export type { IdptConfig } from './config.js';
