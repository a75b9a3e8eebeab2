/**
 * Training examples from plain text (blank-line paragraphs) or JSONL ({"text"}, {"prompt","completion"} with
 * the loss on the completion only, or chat {"messages"} with the loss on the assistant turns only), and
 * packing into fixed [rows, T+1] token blocks.
 *
 * Packing follows the dynamic pack idea of CodeACT (Lv et al., 2024, "Dynamic Pack padding"): order
 * examples by length and fill each row with as many as fit (first-fit decreasing), so few positions are
 * padding. Packed examples share a row the way pretraining documents do: each starts with BOS and later
 * ones may attend to earlier ones in the row; only padding is masked out of the loss.
 */
import { type ChatMessage, type ChatTemplate, SpecialSplitter, missingTemplateMessage } from '../tokenizer/chat-template.js';
import type { Tokenizer, TokenizerData } from '../tokenizer/types.js';
import { lineBatches, paragraphBatches } from './text.js';

export interface Example {
  /** Token ids, BOS first (chat examples: as the template renders them, e.g. `<|im_start|>` first). */
  ids: number[];
  /** 1 where the token is a prediction target (the loss counts it), per position of `ids`. */
  target: Uint8Array;
  /**
   * The task id of a JSONL line's integer "task" field (task-routed adapters such as Poly read it per row);
   * packing puts only examples of one task in a row.
   */
  task?: number;
}

export class DataError extends Error {
  constructor(message: string) { super(message); this.name = 'DataError'; }
}

/** One example per paragraph; every token after BOS is a target. */
export function textExamples(paras: readonly string[], tok: Tokenizer, maxLen: number): Example[] {
  return paras.map((p) => {
    const all = tok.encode(p, { bos: true });
    const ids = all.length > maxLen + 1 ? all.slice(0, maxLen + 1) : all;
    // Every token but BOS is a target (filled, not mapped: this runs once per example of a large corpus).
    const target = new Uint8Array(ids.length).fill(1);
    target[0] = 0;
    return { ids, target };
  });
}

/**
 * What chat data ({"messages": […]}) needs: the template (absent when the model has none; a "messages"
 * line is then an error) and the tokenizer description (its special tokens, its name for messages).
 */
export interface ChatData {
  template?: ChatTemplate;
  data: TokenizerData;
  splitter?: SpecialSplitter;
}

/**
 * JSONL lines: {"text": …}, {"prompt": …, "completion": …} or {"messages": [{role, content}, …]} (needs `chat`).
 * A malformed line is an error naming file:line.
 */
export function jsonlExamples(text: string, file: string, tok: Tokenizer, maxLen: number, chat?: ChatData): Example[] {
  const out: Example[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const e = jsonlExample(line, `${file}:${i + 1}`, tok, maxLen, chat);
    if (e) out.push(e);
  });
  if (out.length === 0) throw new DataError(`${file}: no examples`);
  return out;
}

/**
 * One JSONL line's example (undefined for a blank line); `where` (file:line) names it in errors. A numeric
 * "task" field must be a task id (an integer ≥ 0) and is kept; a string one names a task for the data
 * selectors (src/select) and is not an id.
 */
export function jsonlExample(line: string, where: string, tok: Tokenizer, maxLen: number, chat?: ChatData): Example | undefined {
  if (!line.trim()) return undefined;
  let row: unknown;
  try { row = JSON.parse(line); } catch (e) { throw new DataError(`${where}: not valid JSON (${(e as Error).message})`); }
  if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new DataError(`${where}: each line must be a JSON object`);
  const r = row as Record<string, unknown>;
  const task = r.task;
  if (typeof task === 'number' && !(Number.isSafeInteger(task) && task >= 0)) throw new DataError(`${where}: "task" must be a task id, an integer ≥ 0 (got ${task})`);
  const e = untaskedExample(r, where, tok, maxLen, chat);
  return typeof task === 'number' ? { ...e, task } : e;
}

function untaskedExample(r: Record<string, unknown>, where: string, tok: Tokenizer, maxLen: number, chat?: ChatData): Example {
  if (typeof r.text === 'string') return textExamples([r.text], tok, maxLen)[0]!;
  if (typeof r.prompt === 'string' && typeof r.completion === 'string') {
    const p = tok.encode(r.prompt, { bos: true });
    // The completion continues the prompt's text, so it is encoded without a second dummy-prefix space.
    const full = tok.encode(r.prompt + r.completion, { bos: true });
    const ids = full.slice(0, maxLen + 1);
    const start = commonPrefix(p, full);
    const target = new Uint8Array(ids.length).fill(1, Math.max(1, start));
    return { ids, target };
  }
  if (r.messages !== undefined) {
    if (!chat?.template) throw new DataError(`${where}: "messages" data needs a chat template, but ${missingTemplateMessage(chat?.data.source)}`);
    return chatExample(messagesOf(r.messages, where), chat, tok, maxLen, where);
  }
  throw new DataError(`${where}: expected {"text": string}, {"prompt": string, "completion": string} or {"messages": [{"role", "content"}, …]}, got keys ${Object.keys(r).join(', ') || 'none'}`);
}

/**
 * Examples from a data file read in chunks: JSONL lines or blank-line paragraphs, each tokenised as it is
 * read, so only the token ids are held, never the whole text. `progress` is called every `every` examples.
 */
export async function streamExamples(
  chunks: AsyncIterable<string>, o: { file: string; jsonl: boolean; tok: Tokenizer; maxLen: number; progress?: (examples: number) => void; every?: number; chat?: ChatData },
): Promise<Example[]> {
  const out: Example[] = [];
  const every = o.every ?? 10_000;
  const add = (e: Example | undefined): void => {
    if (!e) return;
    out.push(e);
    if (o.progress && out.length % every === 0) o.progress(out.length);
  };
  if (o.jsonl) {
    let n = 0;
    for await (const batch of lineBatches(chunks)) for (const line of batch) add(jsonlExample(line.replace(/\r?\n$/, ''), `${o.file}:${++n}`, o.tok, o.maxLen, o.chat));
  } else {
    for await (const batch of paragraphBatches(chunks)) for (const p of textExamples(batch, o.tok, o.maxLen)) add(p);
  }
  if (out.length === 0) throw new DataError(`${o.file}: no ${o.jsonl ? 'examples' : 'paragraphs'}`);
  return out;
}

function messagesOf(v: unknown, where: string): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw new DataError(`${where}: "messages" must be a non-empty array`);
  return v.map((m, i) => {
    if (!m || typeof m !== 'object' || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw new DataError(`${where}: messages[${i}] must be {"role": string, "content": string}`);
    }
    return { role: m.role, content: m.content };
  });
}

/**
 * One conversation as an example whose targets are the assistant turns. The conversation is rendered
 * prefix by prefix: each assistant message's span is the text between the rendering of the messages
 * before it with the generation prompt and the rendering that includes it, that is its content, the
 * end-of-turn token and whatever the template writes after it in that turn (ChatML's newline). The text is
 * tokenised in segments cut at those spans' edges and at special tokens (which map to their ids), so a
 * prompt is tokenised as `generate --chat` tokenises it.
 */
export function chatExample(messages: readonly ChatMessage[], chat: ChatData, tok: Tokenizer, maxLen: number, where: string): Example {
  const tmpl = chat.template!;
  const splitter = chat.splitter ??= new SpecialSplitter(chat.data);
  const render = (ms: readonly ChatMessage[], gen: boolean): string => {
    try { return tmpl.render(ms, gen); } catch (e) { throw new DataError(`${where}: ${(e as Error).message}`); }
  };
  const full = render(messages, false);
  const cuts: { start: number; end: number }[] = [];
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const before = render(messages.slice(0, i), true), upto = render(messages.slice(0, i + 1), false);
    if (!upto.startsWith(before) || !full.startsWith(upto)) {
      throw new DataError(`${where}: the chat template does not render this conversation prefix by prefix (messages[${i}]), so the assistant turns cannot be located`);
    }
    if (upto.length > before.length) cuts.push({ start: before.length, end: upto.length });
  });
  if (cuts.length === 0) throw new DataError(`${where}: no assistant message, so nothing to learn`);
  const ids: number[] = [], flags: number[] = [];
  const add = (text: string, t: number): void => { for (const id of splitter.encode(text, tok)) { ids.push(id); flags.push(t); } };
  let at = 0;
  for (const c of cuts) { add(full.slice(at, c.start), 0); add(full.slice(c.start, c.end), 1); at = c.end; }
  add(full.slice(at), 0);
  const n = Math.min(ids.length, maxLen + 1);
  const target = Uint8Array.from(flags.slice(0, n));
  target[0] = 0;
  return { ids: ids.slice(0, n), target };
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

export interface PackedBlocks {
  /** rows × (T + 1) ids; inputs are [:, :T], next-token targets [:, 1:]. */
  ids: Int32Array;
  /** rows × T targets for the next-token loss, −100 where nothing is predicted. */
  targets: Int32Array;
  rows: number;
  seq: number;
  /** Fraction of target positions that are padding, packed. */
  paddingRatio: number;
  /** The same with one example per row (naive padding to T), for comparison. */
  naivePaddingRatio: number;
  /** Each row's task id (−1: its examples had none); present when any example has one. */
  tasks?: Int32Array;
}

/** Counters a caller may pass to `pack` to see how much work placing the examples took. */
export interface PackStats {
  /** Tree nodes visited while finding each example's row (O(log rows) per example). */
  nodeVisits: number;
}

/**
 * Pack examples into rows of T+1 tokens: first-fit decreasing by length. Lengths are at most T+1, so
 * they are ordered by a counting sort (stable, O(n + T)); the first row with room is found in a max-tree
 * over the rows' free space (O(log rows)), so packing n examples costs O(n log n) instead of the
 * O(n · rows) of scanning every row. Examples with task ids are packed task by task, so that every row has
 * one task (`tasks`); rows of examples without one have task −1.
 */
export function pack(examples: readonly Example[], seq: number, padId = 0, stats?: PackStats): PackedBlocks {
  if (!examples.some((e) => e.task !== undefined)) return packRows(examples, seq, padId, stats);
  // A row carries one task id: each task's examples are packed on their own and the rows concatenated.
  const byTask = new Map<number, Example[]>();
  for (const e of examples) {
    const list = byTask.get(e.task ?? -1) ?? [];
    list.push(e);
    byTask.set(e.task ?? -1, list);
  }
  const parts = [...byTask].sort(([a], [b]) => a - b).map(([task, list]) => ({ task, p: packRows(list, seq, padId, stats) }));
  const rows = parts.reduce((n, x) => n + x.p.rows, 0), cap = seq + 1;
  const ids = new Int32Array(rows * cap), targets = new Int32Array(rows * seq), tasks = new Int32Array(rows);
  let at = 0, real = 0;
  for (const { task, p } of parts) {
    ids.set(p.ids, at * cap);
    targets.set(p.targets, at * seq);
    tasks.fill(task, at, at + p.rows);
    at += p.rows;
    for (const t of p.targets) if (t !== -100) real++;
  }
  const placed = examples.filter((e) => e.ids.length >= 2);
  const naiveReal = placed.reduce((n, e) => n + countTargets(e, cap), 0), naiveSlots = placed.length * seq;
  return {
    ids, targets, rows, seq, tasks,
    paddingRatio: rows ? 1 - real / (rows * seq) : 0,
    naivePaddingRatio: naiveSlots ? 1 - naiveReal / naiveSlots : 0,
  };
}

function packRows(examples: readonly Example[], seq: number, padId: number, stats?: PackStats): PackedBlocks {
  const cap = seq + 1;
  const order = lengthOrder(examples, cap);
  const fit = new FirstFitTree(order.length, cap, stats);
  const rowOf = new Int32Array(order.length);
  for (let j = 0; j < order.length; j++) rowOf[j] = fit.place(Math.min(examples[order[j]!]!.ids.length, cap));
  const rows = fit.rows;
  const ids = new Int32Array(rows * cap).fill(padId), targets = new Int32Array(rows * seq).fill(-100);
  const at = new Int32Array(rows);
  let real = 0, naiveReal = 0;
  for (let j = 0; j < order.length; j++) {
    const e = examples[order[j]!]!, ri = rowOf[j]!, len = Math.min(e.ids.length, cap), start = at[ri]!;
    for (let k = 0; k < len; k++) {
      ids[ri * cap + start + k] = e.ids[k]!;
      // Position start+k−1 predicts token start+k when that token is a target of the same example.
      if (k >= 1 && e.target[k]) { targets[ri * seq + start + k - 1] = e.ids[k]!; real++; }
    }
    naiveReal += countTargets(e, cap);
    at[ri] = start + len;
  }
  const naiveSlots = order.length * seq;
  return {
    ids, targets, rows, seq,
    paddingRatio: rows ? 1 - real / (rows * seq) : 0,
    naivePaddingRatio: naiveSlots ? 1 - naiveReal / naiveSlots : 0,
  };
}

/** Indices of the examples with at least two tokens, longest first (capped at `cap`), ties in input order. */
function lengthOrder(examples: readonly Example[], cap: number): Int32Array {
  const count = new Int32Array(cap + 2);
  for (const e of examples) if (e.ids.length >= 2) count[Math.min(e.ids.length, cap)]!++;
  // Start of each length's run, longest first.
  let at = 0;
  for (let n = cap; n >= 2; n--) { const c = count[n]!; count[n] = at; at += c; }
  const order = new Int32Array(at);
  examples.forEach((e, i) => { if (e.ids.length >= 2) order[count[Math.min(e.ids.length, cap)]!++] = i; });
  return order;
}

/**
 * Rows of capacity `cap` in a complete binary tree whose nodes hold the most free space below them;
 * `place` walks from the root to the leftmost row with room, which is the row a linear first-fit scan
 * would pick.
 */
class FirstFitTree {
  private readonly free: Int32Array;
  private readonly leaves: number;
  rows = 0;

  constructor(maxRows: number, private readonly cap: number, private readonly stats?: PackStats) {
    let leaves = 1;
    while (leaves < Math.max(1, maxRows)) leaves *= 2;
    this.leaves = leaves;
    // Rows not opened yet count as empty ones: the leftmost of them is the next new row.
    this.free = new Int32Array(2 * leaves).fill(cap);
  }

  /** The row that takes `len` tokens (a new one when none has room); returns its index. */
  place(len: number): number {
    const f = this.free;
    let node = 1;
    while (node < this.leaves) {
      node = f[2 * node]! >= len ? 2 * node : 2 * node + 1;
      if (this.stats) this.stats.nodeVisits++;
    }
    const row = node - this.leaves;
    if (row >= this.rows) this.rows = row + 1;
    f[node] = f[node]! - len;
    for (node >>= 1; node >= 1; node >>= 1) f[node] = Math.max(f[2 * node]!, f[2 * node + 1]!);
    return row;
  }
}

function countTargets(e: Example, cap: number): number {
  let n = 0;
  for (let k = 1; k < Math.min(e.ids.length, cap); k++) n += e.target[k]!;
  return n;
}

/**
 * Inputs for rows [start, start+batch) of packed blocks, wrapping around: ids [B, T] and targets [B·T], and
 * the rows' task ids [B] when the blocks have them.
 */
export function batchAt(p: PackedBlocks, start: number, batch: number): { ids: Int32Array; targets: Int32Array; tasks?: Int32Array } {
  const T = p.seq, cap = T + 1;
  const ids = new Int32Array(batch * T), targets = new Int32Array(batch * T);
  const tasks = p.tasks ? new Int32Array(batch) : undefined;
  for (let b = 0; b < batch; b++) {
    const r = (start + b) % p.rows;
    ids.set(p.ids.subarray(r * cap, r * cap + T), b * T);
    targets.set(p.targets.subarray(r * T, r * T + T), b * T);
    if (tasks) tasks[b] = p.tasks![r]!;
  }
  return tasks ? { ids, targets, tasks } : { ids, targets };
}
