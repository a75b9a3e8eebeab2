/**
 * The next-token loss of a Llama graph, with the output head fused into a chunked cross-entropy for big
 * vocabularies: rows of the final hidden state are taken C at a time, each chunk's logits [C, V] feed
 * its own cross-entropy, and the chunks combine into the mean over counted targets exactly as the
 * `cross_entropy` op defines it. Each chunk is a checkpoint segment, so the backward pass recomputes its
 * logits one chunk at a time and a [tokens × V] logits tensor never exists whole.
 */
import * as F from '../graph/api.js';
import { gradients } from '../graph/autodiff.js';
import { type CheckpointSegment, segment } from '../graph/checkpoint.js';
import type { Tensor } from '../graph/graph.js';
import type { LlamaGraph } from './llama.js';

/** Rows per chunk: a row count, 0 for one cross-entropy over all rows, or 'auto' (see ceChunkRows). */
export type CeChunk = number | 'auto';

/** Logit elements one chunk may hold under 'auto': 64 MiB of f32. */
const AUTO_CHUNK_ELEMS = 16 * 1024 * 1024;

/**
 * Rows per chunk for `rows` rows over vocabulary `vocab`, or 0 when one cross-entropy over all rows is
 * used: 'auto' chunks only when the whole logits would pass 64 MiB, then as many rows as fit in it.
 */
export function ceChunkRows(chunk: CeChunk, rows: number, vocab: number): number {
  if (chunk !== 'auto' && !(Number.isInteger(chunk) && chunk >= 0)) {
    throw new Error(`ceChunk must be 'auto', 0 (off) or a positive number of rows (got ${String(chunk)})`);
  }
  const c = chunk === 'auto' ? Math.max(1, Math.floor(AUTO_CHUNK_ELEMS / vocab)) : chunk;
  return c > 0 && c < rows ? c : 0;
}

export interface ChunkedLoss {
  /** Mean cross-entropy over rows whose target is in [0, V) and not ignoreIndex (0 when there are none). */
  readonly loss: Tensor;
  /** One checkpoint segment per chunk, for `gradients(loss, wrt, { checkpoint })`; empty without chunks or with `rowsOnly`. */
  readonly segments: CheckpointSegment[];
  /** The logits of each chunk (of the whole, unchunked): what the head computed, for checking what feeds it. */
  readonly logits: Tensor[];
}

/**
 * Cross-entropy of head(rows) against targets, `chunk` rows at a time (0: in one piece).
 * rows [N, D], targets i32 [N], head maps [C, D] → logits [C, V].
 *
 * `rowsOnly`: the gradient is wanted for `rows` alone, never for the head's own parameters (a frozen
 * head). Each chunk's gradient with respect to its rows is then formed in the forward pass, while its
 * logits exist, and the backward pass only scales it: the head runs twice per chunk (logits, and their
 * gradient back to the rows) instead of three times (logits, recomputed logits, gradient). The chunk's
 * term is stop(loss) + (s − stop(s)) with s = Σ rows ⊙ stop(∂loss/∂rows): its value is the loss, its
 * gradient ∂loss/∂rows. The caller checks that no trained parameter feeds the head (`logits`).
 */
export function chunkedCrossEntropy(rows: Tensor, head: (rows: Tensor) => Tensor, targets: Tensor, vocab: number, chunk: number, ignoreIndex = -100, o: { rowsOnly?: boolean } = {}): ChunkedLoss {
  const g = rows.graph, N = rows.shape[0]!;
  if (chunk <= 0 || chunk >= N) {
    const logits = head(rows);
    return { loss: F.crossEntropy(logits, targets, ignoreIndex), segments: [], logits: [logits] };
  }
  // counted[n] = 1 where row n's target counts, by a lookup in a [V, 1] table of ones with the ignored
  // row zeroed (out-of-range ids read a zero row on every backend, as the op skips them).
  const ones = (n: number): Tensor[] => (n > 0 ? [F.fill(g, [n, 1], 1)] : []);
  const table = ignoreIndex >= 0 && ignoreIndex < vocab
    ? F.concat([...ones(ignoreIndex), F.fill(g, [1, 1], 0), ...ones(vocab - ignoreIndex - 1)], 0)
    : F.fill(g, [vocab, 1], 1);
  const counted = F.reshape(F.embedding(table, targets), [N]);
  const total = F.sum(counted);
  // max(1, n) for a count n ≥ 0: exp(−1e30·n) is exactly 1 at n = 0 and underflows to 0 from n = 1 on.
  const denominator = F.add(total, F.exp(F.scale(total, -1e30)));
  const segments: CheckpointSegment[] = [], logits: Tensor[] = [];
  let sum: Tensor | undefined;
  for (let a = 0, k = 0; a < N; a += chunk, k++) {
    const b = Math.min(N, a + chunk);
    const n = F.sum(F.slice(counted, 0, a, b));
    // The chunk's mean times its count is its summed loss.
    const chunkTerm = (): Tensor => {
      const rc = F.slice(rows, 0, a, b), z = head(rc);
      logits.push(z);
      const term = F.mul(F.crossEntropy(z, F.slice(targets, 0, a, b), ignoreIndex), n);
      if (!o.rowsOnly) return term;
      const dRows = g.within(`cross_entropy.chunk${k}.rows_gradient`, () => gradients(term, [rc]).get(rc));
      const s = F.sum(F.mul(rc, F.stopGradient(dRows)));
      return F.add(F.stopGradient(term), F.sub(s, F.stopGradient(s)));
    };
    if (o.rowsOnly) {
      const term = chunkTerm();
      sum = sum ? F.add(sum, term) : term;
      continue;
    }
    const { value: term, segment: s } = segment(g, `cross_entropy.chunk${k}`, chunkTerm);
    segments.push(s);
    sum = sum ? F.add(sum, term) : term;
  }
  return { loss: F.div(sum!, denominator), segments, logits };
}

/**
 * Mean next-token cross-entropy of a Llama graph against targets i32 [B·T] for its last T positions
 * (input-side adapters put virtual tokens first; they predict nothing). Chunked, an adapter on an untied
 * head runs once per chunk, so its dropout (if any) draws each chunk's mask apart: the same distribution,
 * not the same draw as in one piece.
 */
export function nextTokenLoss(net: LlamaGraph, targets: Tensor, o: { ceChunk?: CeChunk; rowsOnly?: boolean } = {}): ChunkedLoss {
  const [B, positions, D] = net.hidden.shape as [number, number, number];
  const N = targets.shape[0]!, T = N / B;
  const V = net.vocabSize;
  const h = T === positions ? net.hidden : F.slice(net.hidden, 1, positions - T, positions);
  return chunkedCrossEntropy(F.reshape(h, [N, D]), (rows) => net.head(rows), targets, V, ceChunkRows(o.ceChunk ?? 'auto', N, V), -100, o.rowsOnly ? { rowsOnly: true } : {});
}
