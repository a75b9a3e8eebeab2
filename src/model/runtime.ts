/**
 * A loaded model on a backend: KV-cached generation and next-token loss evaluation. Graphs are built
 * once per shape and reused; frozen weights are uploaded once per graph.
 */
import type { Backend, HostArray } from '../backends/backend.js';
import { type LlamaCheckpoint, isCompactTensor, tensorDType } from '../formats/checkpoint.js';
import { Graph, type Tensor } from '../graph/graph.js';
import * as F from '../graph/api.js';
import { type DType, shapeStr } from '../graph/types.js';
import { Session } from '../scheduler/session.js';
import type { LlamaGraph, ModelHooks } from './llama.js';
import { INSTANCE_INPUT, TASK_ID_INPUT } from './names.js';
import { buildModel } from './families.js';
import { type CeChunk, nextTokenLoss } from './loss.js';
import { checkOptions, type Range } from '../util/ranges.js';
import { SAMPLING_RANGES, Sampler, type SamplingOptions } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  maxTokens?: number;
  /** Token ids that end generation (default: the tokenizer's EOS and BOS). */
  stopTokens?: readonly number[];
  /** Called with each new token id as it is produced. */
  onToken?: (id: number) => void;
  /** Called when generation stops because the model's context is full (before maxTokens or a stop token). */
  onContextFull?: (context: number) => void;
  /** The task id adapters that route by task (Poly) use; default 0 where they know one task, required otherwise. */
  task?: number;
}

/** The storage type of each of a checkpoint's weights, for building its graph (buildLlama's weightDtype). */
export function checkpointDtypes(ckpt: LlamaCheckpoint): (name: string) => DType {
  return (name) => {
    const t = ckpt.tensors.get(name);
    return t ? tensorDType(t) : 'f32';
  };
}

/** One run of LlamaRuntime.treeDecoding: slot tokens, their rotary positions and mask, the cache rows moved first. */
export interface TreeRun {
  ids: Int32Array;
  positions: Int32Array;
  mask: Int32Array;
  pos: number;
  moveSrc: Int32Array;
  moveDst: number;
}

export const GENERATE_RANGES = { ...SAMPLING_RANGES, maxTokens: { integer: true, min: 1 }, task: { integer: true, min: 0 } } satisfies Record<string, Range>;

/**
 * Each of `rows` rows' task id for adapters that route by task (ModelHooks.tasks), or undefined where none
 * does: `given` (one id for every row, or one per row), checked against the number of tasks; task 0 for
 * every row where the adapters know one task. Giving ids to a model that routes by none is an error.
 */
export function taskIds(hooks: ModelHooks | undefined, rows: number, given: number | readonly number[] | undefined, who: string): Int32Array | undefined {
  const n = hooks?.tasks;
  if (n === undefined) {
    if (given !== undefined) throw new Error(`${who}: task ids were given, but no active adapter routes by task (only Poly does)`);
    return undefined;
  }
  if (given === undefined) {
    if (n === 1) return new Int32Array(rows);
    throw new Error(`${who}: the adapter routes each row by a task id (${n} tasks): give the task (0 to ${n - 1})`);
  }
  const ids = typeof given === 'number' ? new Array<number>(rows).fill(given) : given;
  if (ids.length !== rows) throw new RangeError(`${who}: ${ids.length} task ids for ${rows} rows`);
  const bad = ids.find((t) => !(Number.isInteger(t) && t >= 0 && t < n));
  if (bad !== undefined) throw new RangeError(`${who}: task id ${bad} is outside the adapter's ${n} tasks (0 to ${n - 1})`);
  return Int32Array.from(ids);
}

/** Write a graph's instance representations (when it reads them: an IDPT adapter is active). */
export function setInstance(s: Session, hooks: ModelHooks | undefined, ids: ArrayLike<number>, targets: ArrayLike<number> | undefined, batch: number, seq: number): void {
  const input = s.graph.byName(INSTANCE_INPUT);
  if (!input) return;
  if (!hooks?.instance) throw new Error('the graph reads instance representations, and no adapter gives them');
  s.set(input, hooks.instance(ids, targets, batch, seq));
}

/** Write a graph's task ids (when it reads them: an adapter that routes by task adapts one of its modules). */
function setTasks(s: Session, tasks: Int32Array | undefined): void {
  const input = s.graph.byName(TASK_ID_INPUT);
  if (input && tasks) s.set(input, tasks);
}
export const EVAL_RANGES = { batch: { integer: true, min: 1 }, seq: { integer: true, min: 1 } } satisfies Record<string, Range>;

/**
 * The data of every weight a graph declares, from the checkpoint (names, shapes and storage types
 * checked), for `Session.create`: sessions loaded from one checkpoint share its weights on the backend.
 */
export function weightSources(weights: Map<string, Tensor>, ckpt: LlamaCheckpoint): Map<Tensor, HostArray> {
  const out = new Map<Tensor, HostArray>();
  for (const [name, t] of weights) {
    const src = ckpt.tensors.get(name);
    if (!src) throw new Error(`${ckpt.source}: the model needs tensor ${name}, which the file does not have`);
    if (src.shape.join() !== t.shape.join()) throw new Error(`${ckpt.source}: tensor ${name} is ${shapeStr(src.shape)}, the model expects ${shapeStr(t.shape)}`);
    if (tensorDType(src) !== t.dtype) throw new Error(`${ckpt.source}: tensor ${name} is ${tensorDType(src)}, the graph was built for ${t.dtype}`);
    out.set(t, isCompactTensor(src) ? src.bytes : src.data);
  }
  return out;
}

/** Write every weight a graph declares into a loaded session (a copy of its own: nothing is shared). */
export function uploadWeights(s: Session, weights: Map<string, Tensor>, ckpt: LlamaCheckpoint): void {
  for (const [t, data] of weightSources(weights, ckpt)) s.set(t, data);
}

export class LlamaRuntime {
  private decoder?: { session: Session; graph: LlamaGraph; cacheLen: number };
  private evaluator?: { session: Session; graph: LlamaGraph; loss: Tensor; targets: Tensor; batch: number; seq: number; ceChunk: CeChunk };

  constructor(readonly checkpoint: LlamaCheckpoint, readonly backend: Backend, readonly hooks?: ModelHooks, readonly prepare?: (s: Session) => void) {}

  get config() { return this.checkpoint.config; }

  private async getDecoder(cacheLen: number) {
    if (this.decoder && this.decoder.cacheLen >= cacheLen) return this.decoder;
    this.decoder?.session.dispose();
    const g = new Graph();
    const graph = buildModel(g, this.config, { batch: 1, seq: 1, cacheLen, weightDtype: checkpointDtypes(this.checkpoint), ...(this.hooks ? { hooks: this.hooks } : {}) });
    g.markOutput(graph.logits);
    const session = await Session.create(g, this.backend, undefined, weightSources(graph.weights, this.checkpoint));
    this.prepare?.(session);
    this.decoder = { session, graph, cacheLen };
    return this.decoder;
  }

  /**
   * Feed `prompt` (token ids, BOS included if wanted) and generate up to maxTokens new tokens with the
   * KV cache. Returns the new tokens (the stop token excluded).
   */
  async generate(prompt: readonly number[], o: GenerateOptions = {}): Promise<number[]> {
    if (prompt.length === 0) throw new Error('generate needs at least one prompt token (e.g. BOS)');
    checkOptions('generate', o as Record<string, unknown>, GENERATE_RANGES);
    const maxTokens = o.maxTokens ?? 256;
    // Adapters may occupy positions before the prompt: virtual tokens (in the cache) and an attention prefix.
    const virtual = this.hooks?.virtualTokens ?? 0, prefix = this.hooks?.prefixTokens ?? 0;
    const reserved = virtual + prefix;
    const context = this.config.maxSeqLen;
    const cacheLen = Math.min(context - prefix, virtual + prompt.length + maxTokens);
    if (virtual + prompt.length >= cacheLen) throw new Error(`the prompt has ${prompt.length} tokens${reserved ? ` (and adapters take ${reserved} positions)` : ''}; the model's context is ${context}`);
    const tasks = taskIds(this.hooks, 1, o.task, 'generate');
    const { session, graph } = await this.getDecoder(cacheLen);
    const stops = new Set(o.stopTokens ?? [this.checkpoint.tokenizer?.eosId ?? 2, this.checkpoint.tokenizer?.bosId ?? 1]);
    const sampler = new Sampler(o);
    const history = [...prompt];
    const out: number[] = [];
    let next = -1;
    const start = virtual + prompt.length;
    for (let p = 0; p < cacheLen; p++) {
      const tok = p < virtual ? 0 : p < start ? prompt[p - virtual]! : next;
      if (p >= start) {
        if (stops.has(tok)) break;
        out.push(tok);
        o.onToken?.(tok);
        if (out.length >= maxTokens) break;
      }
      session.set(graph.ids, Int32Array.of(tok));
      // The prompt is the instance (IDPT): every token of it is context.
      if (p === 0) setInstance(session, this.hooks, prompt, undefined, 1, prompt.length);
      if (graph.virtualSlot) session.set(graph.virtualSlot, Int32Array.of(Math.min(p, virtual)));
      session.set(graph.positions!, Int32Array.of(prefix + p));
      session.set(graph.pos!, Int32Array.of(p));
      session.set(graph.kvLen!, Int32Array.of(prefix + p + 1));
      setTasks(session, tasks);
      await session.run();
      if (p >= start - 1) {
        const logits = await session.get(graph.logits);
        next = sampler.next(logits, history);
        history.push(next);
      }
    }
    // The loop ran out of positions: neither a stop token nor maxTokens ended it.
    if (out.length < maxTokens && start + out.length >= cacheLen && !stops.has(next)) o.onContextFull?.(context);
    return out;
  }

  /**
   * Incremental decoding with the KV cache, for callers that combine several models' logits per step
   * (proxy-tuning): `feed(tokens)` runs the tokens at the next positions and returns the logits after the
   * last, f32 [vocab]. Runtimes whose adapters add positions (prompt or prefix tuning) are refused. `task`:
   * as generate's.
   */
  async decoding(cacheLen: number, o: { task?: number } = {}): Promise<{ feed(tokens: readonly number[]): Promise<Float32Array>; readonly position: number }> {
    if ((this.hooks?.virtualTokens ?? 0) + (this.hooks?.prefixTokens ?? 0) > 0) throw new Error('step-by-step decoding does not take adapters that add positions (prompt or prefix tuning)');
    if (!(Number.isInteger(cacheLen) && cacheLen >= 1 && cacheLen <= this.config.maxSeqLen)) throw new RangeError(`decoding: a cache of ${cacheLen} positions (the model's context is ${this.config.maxSeqLen})`);
    const tasks = taskIds(this.hooks, 1, o.task, 'decoding');
    const { session, graph } = await this.getDecoder(cacheLen);
    this.prepare?.(session);
    let p = 0;
    return {
      get position() { return p; },
      async feed(tokens) {
        if (tokens.length === 0) throw new Error('decoding: feed at least one token');
        if (p + tokens.length > cacheLen) throw new RangeError(`decoding: ${p + tokens.length} positions exceed the cache of ${cacheLen}`);
        for (const tok of tokens) {
          session.set(graph.ids, Int32Array.of(tok));
          session.set(graph.positions!, Int32Array.of(p));
          session.set(graph.pos!, Int32Array.of(p));
          session.set(graph.kvLen!, Int32Array.of(p + 1));
          setTasks(session, tasks);
          await session.run();
          p++;
        }
        return Float32Array.from(await session.get(graph.logits));
      },
    };
  }

  /**
   * Draft-tree verification with a KV cache of at least `cacheLen` positions (src/decoding/draft/): each
   * `run` feeds `slots` tokens at once, written to cache rows pos…pos + slots − 1 (rows past the cache are
   * dropped), attending as `mask` (i32 [slots, the returned cacheLen]) allows, at rotary `positions`;
   * before that, cache rows `moveSrc` (i32 [moveRows]) are copied to moveDst… (compacting an accepted
   * path). Returns the logits of every slot, f32 [slots, vocab]. Sessions of its own (their caches are
   * not the decoder's), one per (slots, moveRows), kept and reused for any shorter cache as `generate`
   * reuses its decoder; the returned cacheLen is the cache's actual length.
   */
  async treeDecoding(cacheLen: number, slots: number, moveRows: number): Promise<{ readonly cacheLen: number; run(r: TreeRun): Promise<Float32Array> }> {
    if ((this.hooks?.virtualTokens ?? 0) + (this.hooks?.prefixTokens ?? 0) > 0) throw new Error('draft-tree decoding does not take adapters that add positions (prompt or prefix tuning)');
    if (!(Number.isInteger(cacheLen) && cacheLen >= 1 && cacheLen <= this.config.maxSeqLen)) throw new RangeError(`tree decoding: a cache of ${cacheLen} positions (the model's context is ${this.config.maxSeqLen})`);
    if (!(Number.isInteger(slots) && slots >= 1 && Number.isInteger(moveRows) && moveRows >= 1 && moveRows <= slots)) throw new RangeError(`tree decoding: ${slots} slots and ${moveRows} moved rows (need 1 ≤ moved rows ≤ slots)`);
    const key = `${slots}/${moveRows}`;
    let held = this.treeDecoders.get(key);
    if (!held || held.cacheLen < cacheLen) {
      held?.session.dispose();
      const g = new Graph();
      const graph = buildModel(g, this.config, { batch: 1, seq: slots, cacheLen, tree: { moveRows }, weightDtype: checkpointDtypes(this.checkpoint), ...(this.hooks ? { hooks: this.hooks } : {}) });
      g.markOutput(graph.logits);
      const session = await Session.create(g, this.backend, undefined, weightSources(graph.weights, this.checkpoint));
      held = { session, graph, cacheLen };
      this.treeDecoders.set(key, held);
    }
    const { session, graph } = held, S = held.cacheLen;
    this.prepare?.(session);
    const t = graph.treeInputs!;
    return {
      cacheLen: S,
      async run(r) {
        session.set(graph.ids, r.ids);
        session.set(graph.positions!, r.positions);
        session.set(t.mask, r.mask);
        session.set(t.moveSrc, r.moveSrc);
        session.set(t.moveDst, Int32Array.of(r.moveDst));
        session.set(graph.pos!, Int32Array.of(r.pos));
        session.set(graph.kvLen!, Int32Array.of(Math.min(S, r.pos + slots)));
        await session.run();
        return Float32Array.from(await session.get(graph.logits));
      },
    };
  }

  private readonly treeDecoders = new Map<string, { session: Session; graph: LlamaGraph; cacheLen: number }>();

  /**
   * Mean next-token cross-entropy over sequences (each already BOS + ids, cut to the wanted length):
   * every position predicts the next id. Returns the mean over all predicted tokens and their count.
   */
  async evalLoss(sequences: readonly (readonly number[])[], o: { batch?: number; ceChunk?: CeChunk; tasks?: number | readonly number[]; onProgress?: (done: number, total: number) => void } = {}): Promise<{ loss: number; tokens: number }> {
    const seq = Math.max(2, ...sequences.map((s) => s.length)) - 1;
    const rows = sequences.map((s) => s.slice(0, -1));
    const targets = sequences.map((s) => s.slice(1));
    return this.evalTargets(rows, targets, { ...o, seq });
  }

  /**
   * Mean cross-entropy of explicit (input row, target row) pairs; a target of −100 is not counted.
   * Rows shorter than the longest are padded. `ceChunk` scores that many rows at a time (see fineTune's
   * option of that name; default 'auto'). `tasks`: the task id of every row, or of each, for adapters that
   * route by task (see taskIds).
   */
  async evalTargets(rows: readonly (readonly number[])[], targets: readonly (readonly number[])[], o: { batch?: number; seq?: number; ceChunk?: CeChunk; tasks?: number | readonly number[]; onProgress?: (done: number, total: number) => void } = {}): Promise<{ loss: number; tokens: number }> {
    checkOptions('evalTargets', o, EVAL_RANGES);
    const tasks = taskIds(this.hooks, rows.length, o.tasks, 'evalTargets');
    const seq = o.seq ?? Math.max(1, ...rows.map((r) => r.length));
    const batch = Math.min(o.batch ?? 8, Math.max(1, rows.length));
    const ev = await this.getEvaluator(batch, seq, o.ceChunk ?? 'auto');
    let total = 0, count = 0;
    for (let i = 0; i < rows.length; i += batch) {
      const ids = new Int32Array(batch * seq), tg = new Int32Array(batch * seq).fill(-100);
      let n = 0;
      for (let b = 0; b < batch && i + b < rows.length; b++) {
        const r = rows[i + b]!, t = targets[i + b]!;
        for (let k = 0; k < Math.min(seq, r.length); k++) {
          ids[b * seq + k] = r[k]!;
          if (t[k] !== undefined && t[k] !== -100) { tg[b * seq + k] = t[k]!; n++; }
        }
      }
      ev.session.set(ev.graph.ids, ids);
      ev.session.set(ev.targets, tg);
      setInstance(ev.session, this.hooks, ids, tg, batch, seq);
      // Rows past the end (a last, partial batch) route by task 0; they have no targets.
      if (tasks) setTasks(ev.session, Int32Array.from({ length: batch }, (_, b) => tasks[i + b] ?? 0));
      await ev.session.run();
      total += (await ev.session.get(ev.loss))[0]! * n;
      count += n;
      o.onProgress?.(Math.min(rows.length, i + batch), rows.length);
    }
    return { loss: total / Math.max(1, count), tokens: count };
  }

  private async getEvaluator(batch: number, seq: number, ceChunk: CeChunk) {
    if (this.evaluator && this.evaluator.batch === batch && this.evaluator.seq === seq && this.evaluator.ceChunk === ceChunk) return this.evaluator;
    this.evaluator?.session.dispose();
    const g = new Graph();
    const graph = buildModel(g, this.config, { batch, seq, weightDtype: checkpointDtypes(this.checkpoint), ...(this.hooks ? { hooks: this.hooks } : {}) });
    const targets = g.input('targets', [batch * seq], 'i32');
    // Input-side adapters may prepend positions: only the last `seq` are scored. Big vocabularies are
    // scored a chunk of rows at a time, so the whole logits never exist.
    const { loss } = nextTokenLoss(graph, targets, { ceChunk });
    g.markOutput(loss);
    const session = await Session.create(g, this.backend, undefined, weightSources(graph.weights, this.checkpoint));
    this.prepare?.(session);
    this.evaluator = { session, graph, loss, targets, batch, seq, ceChunk };
    return this.evaluator;
  }

  /**
   * The model's logits for `batch` rows of `seq` token ids, f32 [batch·seq·vocab] (the positions adapters
   * prepend left out). The adapters' current values are uploaded on every call, so a caller that changes
   * them between calls (a training loop) reads the model as it is now. `tasks`: as evalTargets'.
   */
  async logits(ids: Int32Array, batch: number, seq: number, tasks?: number | readonly number[]): Promise<Float32Array> {
    if (ids.length !== batch * seq) throw new RangeError(`logits: ${ids.length} ids for ${batch} rows of ${seq}`);
    const rowTasks = taskIds(this.hooks, batch, tasks, 'logits');
    if (!this.forward || this.forward.batch !== batch || this.forward.seq !== seq) {
      this.forward?.session.dispose();
      const g = new Graph();
      const graph = buildModel(g, this.config, { batch, seq, weightDtype: checkpointDtypes(this.checkpoint), ...(this.hooks ? { hooks: this.hooks } : {}) });
      const logits = graph.virtualTokens ? F.slice(graph.logits, 1, graph.virtualTokens, graph.virtualTokens + seq) : graph.logits;
      g.markOutput(logits);
      const session = await Session.create(g, this.backend, undefined, weightSources(graph.weights, this.checkpoint));
      this.forward = { session, graph, logits, batch, seq };
    }
    const fw = this.forward;
    this.prepare?.(fw.session);
    fw.session.set(fw.graph.ids, ids);
    // Without targets every token of a row is context (the rows are prompts).
    setInstance(fw.session, this.hooks, ids, undefined, batch, seq);
    setTasks(fw.session, rowTasks);
    await fw.session.run();
    return Float32Array.from(await fw.session.get(fw.logits));
  }

  private forward?: { session: Session; graph: LlamaGraph; logits: Tensor; batch: number; seq: number };

  dispose(): void {
    this.decoder?.session.dispose();
    this.evaluator?.session.dispose();
    this.forward?.session.dispose();
    for (const t of this.treeDecoders.values()) t.session.dispose();
    this.treeDecoders.clear();
  }
}
