/** Data selection: read the data, score it with the model, run one selector. */
import type { Backend } from '../backends/backend.js';
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { selectAdaptInf } from './adapt-inf/index.js';
import { selectCdas } from './cdas/index.js';
import { Forward, gradientFeatures, itemSignals, type SelectItem, selectItems, seqFor } from './common/index.js';
import type { Selection } from './common/selection.js';
import { selectDeita } from './deita/index.js';
import { selectNudge } from './nudge/index.js';

export const SELECT_METHODS = ['cdas', 'deita', 'nudge', 'adapt-inf'] as const;
export type SelectMethod = (typeof SELECT_METHODS)[number];
export type { Selection } from './common/selection.js';

export interface SelectOptions {
  method: SelectMethod;
  keep: number;
  seed?: number;
  clusters?: number;
  threshold?: number;
  /** nudge: the target data (JSONL text and its file name). */
  target?: { text: string; file: string };
  maxLen?: number;
  /** Gradient feature size for adapt-inf (default 32). */
  gradDim?: number;
  onProgress?: (what: string, done: number, total: number) => void;
}

export async function selectData(ckpt: LlamaCheckpoint, tok: Tokenizer, backend: Backend, data: { text: string; file: string }, o: SelectOptions): Promise<{ items: SelectItem[]; selection: Selection }> {
  if (!SELECT_METHODS.includes(o.method)) throw new RangeError(`unknown selection method '${o.method}' (methods: ${SELECT_METHODS.join(', ')})`);
  const maxLen = o.maxLen ?? Math.min(256, ckpt.config.maxSeqLen - 1);
  const items = selectItems(data.text, data.file, tok, maxLen);
  if (o.keep > items.length) throw new RangeError(`--keep ${o.keep} is more than the ${items.length} examples in ${data.file}`);
  const target = o.method === 'nudge' ? (o.target ? selectItems(o.target.text, o.target.file, tok, maxLen) : undefined) : undefined;
  if (o.method === 'nudge' && !target) throw new RangeError('nudge needs a target data set (--target FILE)');
  const fw = new Forward(ckpt, backend, seqFor([...items, ...(target ?? [])], ckpt.config.maxSeqLen));
  try {
    const seed = o.seed ?? 0;
    if (o.method === 'adapt-inf') {
      const feats = await gradientFeatures(items, fw, o.gradDim ?? 32, seed);
      const sig = await itemSignals(items, fw, (d) => o.onProgress?.('scoring', d, items.length));
      const selection = selectAdaptInf(items.map((it, i) => ({ task: it.task, feature: feats[i]!, score: sig[i]!.lossCond })), { keep: o.keep, seed, ...(o.clusters ? { clusters: o.clusters } : {}), ...(o.threshold !== undefined ? { threshold: o.threshold } : {}) });
      return { items, selection };
    }
    const sig = await itemSignals(items, fw, (d) => o.onProgress?.('scoring', d, items.length));
    if (o.method === 'cdas') return { items, selection: selectCdas(sig, { keep: o.keep, seed, ...(o.clusters ? { clusters: o.clusters } : {}) }) };
    if (o.method === 'deita') return { items, selection: selectDeita(sig, { keep: o.keep, ...(o.threshold !== undefined ? { threshold: o.threshold } : {}) }) };
    const tsig = await itemSignals(target!, fw);
    return { items, selection: selectNudge(sig, tsig, { keep: o.keep }) };
  } finally {
    fw.dispose();
  }
}
