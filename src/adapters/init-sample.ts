/** A data sample for data-driven initialisations (EVA, CorDA) from packed training rows. */
import type { PackedBlocks } from '../data/dataset.js';
import type { InitSample } from './types.js';

/**
 * The first `rows` rows of packed blocks (all by default) as an InitSample read `batchRows` at a time. A
 * position's token is a target when the position before it predicts it (PEFT's labels ≠ −100 for that token);
 * a row's tokens run up to the one after its last prediction, the rest is padding.
 */
export function initSampleFromBlocks(blocks: PackedBlocks, o: { batchRows: number; rows?: number }): InitSample {
  if (!Number.isInteger(o.batchRows) || o.batchRows < 1) throw new Error(`init sample: batchRows must be an integer ≥ 1 (got ${o.batchRows})`);
  const T = blocks.seq, cap = T + 1, count = Math.min(o.rows ?? blocks.rows, blocks.rows);
  const rows: Int32Array[] = [], targets: Uint8Array[] = [], present: Uint8Array[] = [];
  for (let r = 0; r < count; r++) {
    const tgt = blocks.targets.subarray(r * T, (r + 1) * T), isTarget = new Uint8Array(T), isPresent = new Uint8Array(T);
    let last = -1;
    for (let t = 0; t < T; t++) {
      if (tgt[t] !== -100) last = t;
      if (t >= 1 && tgt[t - 1] !== -100) isTarget[t] = 1;
    }
    for (let t = 0; t <= Math.min(last + 1, T - 1); t++) isPresent[t] = 1;
    rows.push(blocks.ids.slice(r * cap, r * cap + T));
    targets.push(isTarget);
    present.push(isPresent);
  }
  return { rows, targets, present, batchRows: o.batchRows };
}
