/**
 * Classification data: JSON lines or tab-separated text, labels turned into ids, text into token ids.
 *
 * - seq-cls: `{"text": "...", "label": "pos" | 3}` per line (.jsonl), or `sentence<TAB>label` per line
 *   (any other file; the UCI sentiment files' layout).
 * - token-cls: `{"tokens": ["w1", …], "labels": ["B-PER", …]}` per line; each word is tokenized on its own,
 *   its first piece carries the word's label and the other pieces are not scored (transformers' convention).
 */
import type { Tokenizer, TokenizerData } from '../../tokenizer/types.js';
import type { EncodedExample } from './classifier.js';
import type { EncoderTask } from './config.js';

/** One example before tokenization: a text and its label, or words and theirs. */
export type RawExample = { text: string; label: string | number; line: number } | { tokens: string[]; labels: (string | number)[]; line: number };

/** Parse a data file's text; errors name the file and the line. */
export function parseClassificationData(text: string, task: EncoderTask, source: string): RawExample[] {
  const out: RawExample[] = [];
  const jsonl = /\.jsonl?$/i.test(source) || /^\s*\{/.test(text);
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1, at = `${source}:${line}`;
    if (raw.trim() === '') return;
    if (!jsonl) {
      if (task === 'token-cls') throw new Error(`${at}: token classification data must be JSON lines {"tokens": [...], "labels": [...]}`);
      const tab = raw.lastIndexOf('\t');
      if (tab < 0) throw new Error(`${at}: expected "sentence<TAB>label"`);
      const label = raw.slice(tab + 1).trim(), sentence = raw.slice(0, tab).trim();
      if (!label || !sentence) throw new Error(`${at}: expected "sentence<TAB>label" with both parts non-empty`);
      out.push({ text: sentence, label: /^-?\d+$/.test(label) ? Number(label) : label, line });
      return;
    }
    let o: unknown;
    try { o = JSON.parse(raw); } catch (e) { throw new Error(`${at}: not valid JSON (${(e as Error).message})`); }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new Error(`${at}: expected a JSON object`);
    const r = o as Record<string, unknown>;
    const isLabel = (v: unknown): v is string | number => (typeof v === 'string' && v !== '') || Number.isInteger(v);
    if (task === 'seq-cls') {
      if (typeof r.text !== 'string' || r.text.trim() === '') throw new Error(`${at}: expected a non-empty "text" string`);
      if (!isLabel(r.label)) throw new Error(`${at}: "label" must be a string or an integer (got ${JSON.stringify(r.label)})`);
      out.push({ text: r.text, label: r.label, line });
    } else {
      if (!Array.isArray(r.tokens) || r.tokens.length === 0 || !r.tokens.every((t) => typeof t === 'string' && t !== '')) throw new Error(`${at}: "tokens" must be a non-empty list of strings`);
      if (!Array.isArray(r.labels) || !r.labels.every(isLabel)) throw new Error(`${at}: "labels" must be a list of strings or integers`);
      if (r.labels.length !== r.tokens.length) throw new Error(`${at}: ${r.tokens.length} tokens but ${r.labels.length} labels`);
      out.push({ tokens: r.tokens as string[], labels: r.labels as (string | number)[], line });
    }
  });
  if (out.length === 0) throw new Error(`${source}: no examples`);
  return out;
}

const labelsOf = (e: RawExample): (string | number)[] => ('text' in e ? [e.label] : e.labels);

/**
 * Label names for training data: the model config's names when every label is one of them (or an id
 * within them); integers 0…n−1 otherwise become "0"…"n−1"; strings are sorted.
 */
export function labelSet(data: readonly RawExample[], known: readonly string[] = []): string[] {
  const all = data.flatMap(labelsOf);
  if (known.length >= 2 && all.every((l) => (typeof l === 'number' ? l >= 0 && l < known.length : known.includes(l)))) return [...known];
  if (all.every((l) => typeof l === 'number')) {
    const max = Math.max(...(all as number[]));
    if ((all as number[]).some((l) => l < 0)) throw new Error('integer labels must be 0 or more');
    return Array.from({ length: Math.max(max + 1, 2) }, (_, i) => String(i));
  }
  const names = [...new Set(all.map(String))].sort();
  if (names.length < 2) throw new Error(`the data has a single label (${JSON.stringify(names[0])}); a classifier needs at least 2`);
  return names;
}

/** The id of a label among `labels` (an integer is an id, or a name when it is written as one); unknown labels are errors naming the line. */
export function labelId(label: string | number, labels: readonly string[], at: string): number {
  const byName = labels.indexOf(String(label));
  if (byName >= 0) return byName;
  if (typeof label === 'number' && label >= 0 && label < labels.length) return label;
  throw new Error(`${at}: unknown label ${JSON.stringify(label)} (the classifier's labels: ${labels.join(', ')})`);
}

/** The ids that open and close a sequence: [CLS]/[SEP] or <s>/</s>. */
export interface SequenceFrame { cls: number; sep: number }

/**
 * The frame of a tokenizer.json's BertProcessing or RobertaProcessing post-processor (`cls` and `sep` as
 * [token, id]), else the tokenizer's BOS and EOS.
 */
export function sequenceFrame(tok: Tokenizer, data?: TokenizerData): SequenceFrame {
  const pp = (data?.json as { post_processor?: { type?: string; cls?: unknown[]; sep?: unknown[] } } | undefined)?.post_processor;
  if ((pp?.type === 'BertProcessing' || pp?.type === 'RobertaProcessing') && Number.isInteger(pp.cls?.[1]) && Number.isInteger(pp.sep?.[1])) {
    return { cls: pp.cls![1] as number, sep: pp.sep![1] as number };
  }
  if (tok.bosId === undefined || tok.eosId === undefined) throw new Error(`${data?.source ?? 'the tokenizer'}: no [CLS]/[SEP] (or <s>/</s>) tokens to frame a sequence with (no BertProcessing/RobertaProcessing post-processor, no BOS/EOS)`);
  return { cls: tok.bosId, sep: tok.eosId };
}

/** Encode examples: [CLS]/<s> text [SEP]/</s>, cut to `maxTokens` (keeping the final separator). */
export function encodeExamples(data: readonly RawExample[], tok: Tokenizer, labels: readonly string[], maxTokens: number, source: string, frame: SequenceFrame = sequenceFrame(tok)): EncodedExample[] {
  if (maxTokens < 3) throw new Error(`rows of ${maxTokens} tokens leave no room for text between [CLS] and [SEP]`);
  return data.map((e) => {
    const at = `${source}:${e.line}`;
    if ('text' in e) {
      const body = tok.encode(e.text, { bos: false }).slice(0, maxTokens - 2);
      return { ids: [frame.cls, ...body, frame.sep], labels: [labelId(e.label, labels, at)] };
    }
    const ids = [frame.cls], out = [-100];
    e.tokens.forEach((w, i) => {
      const pieces = tok.encode(w, { bos: false });
      const id = labelId(e.labels[i]!, labels, at);
      pieces.forEach((p, j) => { ids.push(p); out.push(j === 0 ? id : -100); });
    });
    const keep = Math.min(ids.length, maxTokens - 1);
    return { ids: [...ids.slice(0, keep), frame.sep], labels: [...out.slice(0, keep), -100] };
  });
}

/** Encode texts to predict on (no labels). */
export function encodeTexts(texts: readonly string[], tok: Tokenizer, maxTokens: number, frame: SequenceFrame = sequenceFrame(tok)): { ids: number[] }[] {
  return texts.map((t) => ({ ids: [frame.cls, ...tok.encode(t, { bos: false }).slice(0, maxTokens - 2), frame.sep] }));
}
