/**
 * matmul: C[b] = op(A[b]) · op(B[b]), op = identity or transpose (transA, transB).
 * A [..batch, M, K] (or [..batch, K, M] with transA), B [..batch, K, N] (or [..batch, N, K] with transB),
 * C [..batch, M, N]. Batch dims are equal, or one side is rank 2 and shared across the batch.
 * B may be a compact frozen weight, 2-D and with A not transposed: x·Wᵀ (transB, a linear layer's forward)
 * and dy·W (its activation gradient) are the two products a frozen layer needs.
 */
import * as F from '../api.js';
import type { Tensor } from '../graph.js';
import { isCompact, shapeStr } from '../types.js';
import { defineOp } from './registry.js';
import { boolAttr, expectInputs, sameShape } from './shape.js';

defineOp({
  name: 'matmul',
  compactInputs: [1],
  infer(ins, attrs) {
    expectInputs(ins, 2);
    const [a, b] = [ins[0]!, ins[1]!];
    if (a.dtype !== 'f32' || (b.dtype !== 'f32' && !isCompact(b.dtype))) throw new Error('expects f32 inputs (B may be a compact weight)');
    if (a.shape.length < 2 || b.shape.length < 2) throw new Error('both inputs need rank ≥ 2');
    const tA = boolAttr(attrs, 'transA'), tB = boolAttr(attrs, 'transB');
    if (isCompact(b.dtype) && (b.shape.length !== 2 || tA)) throw new Error(`a compact ${b.dtype} B must be 2-D, with A not transposed`);
    const ra = a.shape.length, rb = b.shape.length;
    const M = a.shape[tA ? ra - 1 : ra - 2]!, Ka = a.shape[tA ? ra - 2 : ra - 1]!;
    const Kb = b.shape[tB ? rb - 1 : rb - 2]!, N = b.shape[tB ? rb - 2 : rb - 1]!;
    if (Ka !== Kb) throw new Error(`inner dimensions differ: ${Ka} vs ${Kb}`);
    const ba = a.shape.slice(0, -2), bb = b.shape.slice(0, -2);
    if (ba.length && bb.length && !sameShape(ba, bb)) throw new Error(`batch dimensions ${shapeStr(ba)} and ${shapeStr(bb)} differ`);
    return [{ shape: [...(ba.length ? ba : bb), M, N], dtype: 'f32' }];
  },
  grad({ node, inputs: [a, b], dOutputs: [dC], needs }) {
    const tA = node.attrs.transA === true, tB = node.attrs.transB === true;
    const dy = dC!;
    let dA: Tensor | null = null, dB: Tensor | null = null;
    if (needs[0]) {
      dA = tA ? F.matmul(b!, dy, { transA: tB, transB: true }) : F.matmul(dy, b!, { transB: !tB });
      dA = sumBatch(dA, a!.rank);
    }
    if (needs[1]) {
      if (isCompact(b!.dtype)) throw new Error(`${b!.info.name ?? 'B'} is a compact ${b!.dtype} weight: frozen, it has no gradient`);
      if (b!.rank === 2 && a!.rank > 2 && !tA) {
        // Shared weight: fold the batch into the rows, one 2-D product instead of a batched one and a sum.
        const K = a!.shape[a!.rank - 1]!, N = dy.shape[dy.rank - 1]!;
        const a2 = F.reshape(a!, [-1, K]), dy2 = F.reshape(dy, [-1, N]);
        dB = tB ? F.matmul(dy2, a2, { transA: true }) : F.matmul(a2, dy2, { transA: true });
      } else {
        dB = tB ? F.matmul(dy, a!, { transA: true, transB: tA }) : F.matmul(a!, dy, { transA: !tA });
        dB = sumBatch(dB, b!.rank);
      }
    }
    return [dA, dB];
  },
});

/** A gradient computed per batch item for an input that was shared across the batch: sum it. */
function sumBatch(g: Tensor, rank: number): Tensor {
  if (g.rank === rank) return g;
  return F.sum(g, Array.from({ length: g.rank - rank }, (_, i) => i));
}
