/**
 * The forward graph of a BERT-family encoder with a classification head, from the op catalogue:
 * embeddings (word + absolute position + segment 0) and LayerNorm, then post-LN layers of bidirectional
 * multi-head attention and a GELU feed-forward block, then the head:
 *
 * - sequence classification on the first token ([CLS] / <s>): BERT `bert.pooler.dense`+tanh then
 *   `classifier`; RoBERTa `classifier.dense`+tanh then `classifier.out_proj`; DistilBERT
 *   `pre_classifier`+ReLU then `classifier`;
 * - token classification: `classifier` on every position.
 *
 * Batches are right-padded: `keyLengths` (i32 [B], the real tokens of each row) masks padded keys in every
 * attention layer. Every linear layer (and the word embedding) goes through `hooks.linear`, as in the
 * decoders, so adapters apply by Hugging Face module name. Dropout is not applied (training runs without it).
 */
import * as F from '../../graph/api.js';
import type { Graph, Tensor } from '../../graph/graph.js';
import type { LinearContext, ModelHooks } from '../llama.js';
import { type EncoderConfig, type EncoderTask, encoderPrefix, headLinears, layerName, positionOffset } from './config.js';

export interface EncoderGraphOptions {
  batch: number;
  seq: number;
  task: EncoderTask;
  numLabels: number;
  hooks?: ModelHooks;
  /** Declare the i32 [B] input `key_lengths` (right-padded rows); without it every row is `seq` tokens. */
  padded?: boolean;
}

export interface EncoderGraph {
  /** i32 [B, T] token ids. */
  readonly ids: Tensor;
  /** i32 [B]: real tokens per row (only with `padded`). */
  readonly keyLengths?: Tensor;
  /** f32 [B, T, D]: the last layer's hidden states. */
  readonly hidden: Tensor;
  /** f32 [B, L] (seq-cls) or [B, T, L] (token-cls). */
  readonly logits: Tensor;
  /** Every weight the graph declares, by Hugging Face name. */
  readonly weights: Map<string, Tensor>;
}

export function buildEncoder(g: Graph, c: EncoderConfig, o: EncoderGraphOptions): EncoderGraph {
  const { batch: B, seq: T } = o, D = c.dim, H = c.nHeads, hd = D / H, p = encoderPrefix(c);
  if (T + positionOffset(c) > c.maxPositions) throw new RangeError(`rows of ${T} tokens exceed the model's ${c.maxPositions - positionOffset(c)} positions`);
  const weights = new Map<string, Tensor>();
  const w = (name: string, shape: number[]): Tensor => {
    let t = weights.get(name);
    if (!t) { t = g.param(name, shape); weights.set(name, t); }
    return t;
  };
  const ids = g.input('input_ids', [B, T], 'i32');
  const keyLengths = o.padded ? g.input('key_lengths', [B], 'i32') : undefined;
  const linear = (name: string, x: Tensor, inF: number, outF: number): Tensor => {
    const weight = w(`${name}.weight`, [outF, inF]), bias = w(`${name}.bias`, [outF]);
    const base = (xx: Tensor = x): Tensor => g.within(name, () => F.add(F.matmul(xx, weight, { transB: true }), bias));
    const ctx: LinearContext = { graph: g, name, x, weight, bias, inFeatures: inF, outFeatures: outF, base };
    return o.hooks?.linear ? o.hooks.linear(ctx) : base();
  };
  const norm = (name: string, x: Tensor): Tensor => g.within(name, () => F.layernorm(x, w(`${name}.weight`, [D]), w(`${name}.bias`, [D]), c.normEps));
  const act = (x: Tensor): Tensor => (c.act === 'gelu' ? F.geluErf(x) : c.act === 'gelu_tanh' ? F.gelu(x) : F.relu(x));

  // Embeddings: words (through the hook, so an embedding adapter applies), positions, segment 0.
  const wordName = `${p}embeddings.word_embeddings`;
  const table = w(`${wordName}.weight`, [c.vocabSize, D]);
  const wordBase = (): Tensor => g.within(wordName, () => F.embedding(table, ids));
  let x = o.hooks?.linear
    ? o.hooks.linear({ graph: g, name: wordName, x: ids, ids, weight: table, inFeatures: c.vocabSize, outFeatures: D, base: wordBase })
    : wordBase();
  x = g.within(`${p}embeddings`, () => {
    const off = positionOffset(c);
    let e = F.add(x, F.slice(w(`${p}embeddings.position_embeddings.weight`, [c.maxPositions, D]), 0, off, off + T));
    if (c.typeVocabSize > 0) e = F.add(e, F.slice(w(`${p}embeddings.token_type_embeddings.weight`, [c.typeVocabSize, D]), 0, 0, 1));
    return e;
  });
  x = norm(`${p}embeddings.LayerNorm`, x);

  const d = c.kind === 'distilbert';
  for (let l = 0; l < c.nLayers; l++) {
    const n = layerName(c, l);
    const [qn, kn, vn, on] = d
      ? ['attention.q_lin', 'attention.k_lin', 'attention.v_lin', 'attention.out_lin']
      : ['attention.self.query', 'attention.self.key', 'attention.self.value', 'attention.output.dense'];
    const heads = (t: Tensor) => F.reshape(t, [B, T, H, hd]);
    const q = heads(linear(`${n}.${qn}`, x, D, D)), k = heads(linear(`${n}.${kn}`, x, D, D)), v = heads(linear(`${n}.${vn}`, x, D, D));
    const attn = g.within(`${n}.attention`, () => F.reshape(F.attention(q, k, v, { causal: false, ...(keyLengths ? { keyLengths } : {}) }), [B, T, D]));
    const h = norm(`${n}.${d ? 'sa_layer_norm' : 'attention.output.LayerNorm'}`, F.add(x, linear(`${n}.${on}`, attn, D, D)));
    const [upName, downName] = d ? ['ffn.lin1', 'ffn.lin2'] : ['intermediate.dense', 'output.dense'];
    const up = g.within(`${n}.${upName}`, () => act(linear(`${n}.${upName}`, h, D, c.hiddenDim)));
    x = norm(`${n}.${d ? 'output_layer_norm' : 'output.LayerNorm'}`, F.add(h, linear(`${n}.${downName}`, up, c.hiddenDim, D)));
  }

  const [first, second] = headLinears(c, o.task, o.numLabels);
  let logits: Tensor;
  if (o.task === 'token-cls') {
    logits = linear(first![0], x, D, o.numLabels);
  } else {
    const cls = F.reshape(F.slice(x, 1, 0, 1), [B, D]);
    const pooled = linear(first![0], cls, D, D);
    logits = linear(second![0], c.kind === 'distilbert' ? F.relu(pooled) : F.tanh(pooled), D, o.numLabels);
  }
  return { ids, hidden: x, logits, weights, ...(keyLengths ? { keyLengths } : {}) };
}
