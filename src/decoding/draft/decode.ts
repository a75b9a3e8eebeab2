/**
 * Draft-and-verify greedy decoding in the manner of ADED (Liu et al. 2024): each step drafts a tree of
 * likely continuations from a tri-gram table, runs the whole tree through the model in one forward pass
 * (tree attention mask, depth-based positions), keeps the longest drafted path that agrees with the
 * model's greedy choice at every node plus the model's own next token after it, compacts the accepted
 * path's KV rows in the cache, and teaches the table the accepted tokens. The output is plain greedy
 * decoding's, token for token: every emitted token is the argmax of the model's logits after exactly the
 * tokens before it.
 */
import type { GenerateOptions, LlamaRuntime } from '../../model/runtime.js';
import { argmax } from '../../model/sampling.js';
import { checkOptions, type Range } from '../../util/ranges.js';
import { buildDraftTree, type DraftNode, treeMask } from './tree.js';
import type { TrigramTable } from './trigram.js';

export interface DraftOptions extends Pick<GenerateOptions, 'maxTokens' | 'stopTokens' | 'onToken' | 'onContextFull'> {
  /** Deepest drafted token (default 4). */
  depth?: number;
  /** Most children per node (default 2). */
  width?: number;
  /** Most drafted tokens per step (default depth × width). */
  budget?: number;
  /** Learn from accepted tokens while decoding (default true). */
  adapt?: boolean;
}

export const DRAFT_RANGES = {
  maxTokens: { integer: true, min: 1 },
  depth: { integer: true, min: 1, max: 64 },
  width: { integer: true, min: 1, max: 64 },
  budget: { integer: true, min: 1, max: 1024 },
} satisfies Record<string, Range>;

/** What a draft decoding did: forward passes of the draft steps, and tokens emitted. */
export interface DraftStats {
  /** Tree-verification passes (prompt passes excluded). */
  passes: number;
  /** Prompt passes (the prompt fed a chunk of tree slots at a time). */
  promptPasses: number;
  /** Tokens emitted. */
  tokens: number;
  /** Drafted tokens accepted (tokens − passes, less any cut by a stop token or maxTokens). */
  accepted: number;
}

/**
 * Greedy decoding of `prompt` with drafts from `table` (updated in place when adapt is on). Returns the new
 * tokens (the stop token excluded) and the step statistics; onToken/onContextFull as in LlamaRuntime.generate.
 */
export async function draftGenerate(model: LlamaRuntime, table: TrigramTable, prompt: readonly number[], o: DraftOptions = {}): Promise<{ tokens: number[]; stats: DraftStats }> {
  checkOptions('draft decoding', o as Record<string, unknown>, DRAFT_RANGES);
  if (prompt.length === 0) throw new Error('generate needs at least one prompt token (e.g. BOS)');
  const depth = o.depth ?? 4, width = o.width ?? 2, budget = o.budget ?? depth * width;
  const maxTokens = o.maxTokens ?? 256, context = model.config.maxSeqLen;
  // The same cache length as LlamaRuntime.generate, so positions (and rotary scaling sized by the cache) match.
  const cacheLen = Math.min(context, prompt.length + maxTokens);
  if (prompt.length >= cacheLen) throw new Error(`the prompt has ${prompt.length} tokens; the model's context is ${context}`);
  const slots = budget + 1, moveRows = Math.min(slots, depth + 1);
  const dec = await model.treeDecoding(cacheLen, slots, moveRows);
  // The session's cache may be longer (reused from a longer generation): masks span all of it, but
  // positions stop at cacheLen as generate's do.
  const rows = dec.cacheLen;
  const stops = new Set(o.stopTokens ?? [model.checkpoint.tokenizer?.eosId ?? 2, model.checkpoint.tokenizer?.bosId ?? 1]);
  const V = model.config.vocabSize;
  const stats: DraftStats = { passes: 0, promptPasses: 0, tokens: 0, accepted: 0 };
  const out: number[] = [], history = [...prompt];
  // Cache rows moved before the next run's writes: none yet (an identity copy of rows that run overwrites).
  let moveSrc = identityMoves(0, moveRows, rows), moveDst = 0;
  const run = async (nodes: readonly DraftNode[], pos: number): Promise<Float32Array> => {
    const ids = new Int32Array(slots), positions = new Int32Array(slots).fill(pos);
    nodes.forEach((n, i) => { ids[i] = n.token; positions[i] = pos + n.depth; });
    const logits = await dec.run({ ids, positions, mask: treeMask(nodes, pos, slots, rows), pos, moveSrc, moveDst });
    moveSrc = identityMoves(pos + slots, moveRows, rows);
    moveDst = Math.min(pos + slots, rows - 1);
    return logits;
  };

  // The prompt but its last token, a chain of `slots` tokens per pass; the last token is the first root.
  let pos = 0;
  while (pos < prompt.length - 1) {
    const n = Math.min(slots, prompt.length - 1 - pos);
    const chain = prompt.slice(pos, pos + n).map((token, i) => ({ token, parent: i - 1, depth: i }));
    await run(chain, pos);
    stats.promptPasses++;
    pos += n;
  }
  let root = prompt[prompt.length - 1]!;
  // pos: the root's position. The tree must fit the cache: node i is written at row pos + i.
  for (;;) {
    const nodes = buildDraftTree(table, history.length >= 2 ? history[history.length - 2]! : -1, root, {
      depth: Math.min(depth, cacheLen - 1 - pos), width, budget: Math.min(budget, cacheLen - 1 - pos),
    });
    const logits = await run(nodes, pos);
    stats.passes++;
    // Walk down while a child holds the model's greedy choice.
    const path = [0];
    let next = argmax(logits.subarray(0, V));
    for (;;) {
      const at = path[path.length - 1]!;
      const child = nodes.findIndex((n, i) => i > at && n.parent === at && n.token === next);
      if (child < 0) break;
      path.push(child);
      next = argmax(logits.subarray(child * V, (child + 1) * V));
    }
    const emitted = [...path.slice(1).map((i) => nodes[i]!.token), next];
    const before = history.length;
    let done = false;
    for (let k = 0; k < emitted.length; k++) {
      const tok = emitted[k]!, at = pos + 1 + k;
      // generate() emits tokens at positions up to cacheLen − 1; the next one would need a longer cache.
      if (at >= cacheLen) { if (out.length < maxTokens && !stops.has(tok)) o.onContextFull?.(context); done = true; break; }
      if (stops.has(tok)) { done = true; break; }
      out.push(tok);
      history.push(tok);
      o.onToken?.(tok);
      if (k < emitted.length - 1) stats.accepted++;
      if (out.length >= maxTokens) { done = true; break; }
    }
    if (o.adapt !== false) table.update(history, before);
    if (done) break;
    // The accepted path's rows (root included) move to pos, pos + 1, …; the model's own token is the next root.
    moveSrc = new Int32Array(moveRows);
    for (let k = 0; k < moveRows; k++) moveSrc[k] = pos + path[Math.min(k, path.length - 1)]!;
    moveDst = pos;
    pos += path.length;
    root = next;
  }
  stats.tokens = out.length;
  return { tokens: out, stats };
}

/** Moves that copy rows onto themselves (from `at`, clamped into the cache): nothing changes. */
function identityMoves(at: number, n: number, cacheLen: number): Int32Array {
  return Int32Array.from({ length: n }, (_, k) => Math.min(at + k, cacheLen - 1));
}
