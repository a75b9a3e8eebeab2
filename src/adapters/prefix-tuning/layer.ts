/**
 * Prefix tuning (Li & Liang, "Prefix-Tuning: Optimizing Continuous Prompts for Generation", ACL 2021, §4)
 * and P-tuning v2 (Liu et al., "P-Tuning v2: Prompt Tuning Can Be Comparable to Fine-tuning Universally
 * Across Scales and Tasks", ACL 2022, §3: deep prompts in every layer, reparameterisation optional):
 * every layer's attention sees P learned key/value positions before the sequence's own,
 *   h_i = P_θ[i, :] for i in the prefix (eq. 3),
 * stored as one table [P, L·2·d_kv] (layer l's keys at block 2l, values at 2l+1, PEFT's layout). With the
 * reparameterisation of §4.3, P_θ = MLP_θ(P'_θ), an embedding [P, d_kv] → Linear → tanh → Linear.
 * The prefix behaves as a KV cache: the sequence's rotary positions start at P (as Hugging Face models
 * number tokens after cached ones), the prefix keys are not rotated, and a decoding runtime attends to
 * [prefix; cache] with the valid length shifted by P.
 */
import type { LlamaConfig } from '../../formats/checkpoint.js';
import * as F from '../../graph/api.js';
import type { Graph, Tensor } from '../../graph/graph.js';
import { createTokenizer } from '../../tokenizer/index.js';
import { gaussian } from '../../util/random.js';
import type { AttentionPrefixContext, BuildContext, InitContext, ParamStore } from '../types.js';
import type { PrefixTuningConfig } from './config.js';

export const PREFIX_KEY = 'prompt_embeddings';
export const encoderKeys = {
  embedding: 'prefix_encoder.embedding.weight',
  w1: 'prefix_encoder.transform.0.weight', b1: 'prefix_encoder.transform.0.bias',
  w2: 'prefix_encoder.transform.2.weight', b2: 'prefix_encoder.transform.2.bias',
};

export const kvDim = (m: LlamaConfig): number => m.nKvHeads * (m.headDim ?? m.dim / m.nHeads);

/**
 * The table from real tokens (Li & Liang §7.2, "initializing the prefix with activations of real words"):
 * row p holds, per layer, the key and value the model computes for token p of the last P tokens of
 * BOS + initText. Keys are taken rotated at their positions 0…P−1 and the prefix is read unrotated with the
 * sequence's positions starting at P, so the initial model is exactly the base model reading that text first.
 */
function activationTable(ctx: InitContext<PrefixTuningConfig>, keyValues: NonNullable<InitContext<PrefixTuningConfig>['keyValues']>): Float32Array {
  const c = ctx.config, P = c.numVirtualTokens, L = ctx.model.nLayers, d = kvDim(ctx.model);
  if (!ctx.tokenizer) throw new Error("prefix-tuning: prefixInit 'activations' needs the model's tokenizer (or use prefixInit 'random')");
  const text = createTokenizer(ctx.tokenizer).encode(c.initText, { bos: true });
  // Repeat a short text to length; keep the end of a long one (the part nearest the sequence).
  const ids = text.length >= P ? text.slice(text.length - P) : Array.from({ length: P }, (_, i) => text[i % text.length]!);
  const { keys, values } = keyValues(ids);
  const table = new Float32Array(P * L * 2 * d);
  for (let p = 0; p < P; p++) for (let l = 0; l < L; l++) {
    const at = (p * L * 2 + 2 * l) * d;
    table.set(keys[l]!.subarray(p * d, p * d + d), at);
    table.set(values[l]!.subarray(p * d, p * d + d), at + d);
  }
  return table;
}

/**
 * The table from real tokens' activations (default), or PEFT's init: the table (or the MLP's input
 * embedding) ~ N(0, σ²), σ = 1; Linear layers as torch's default (uniform ±1/√fan_in). Where the model's
 * activations are not offered (only the shapes are wanted, when a saved adapter is read) the random init
 * stands in: its values are replaced by the file's.
 */
export function createPrefixParams(ctx: InitContext<PrefixTuningConfig>): ParamStore {
  const c = ctx.config, P = c.numVirtualTokens, d = kvDim(ctx.model), width = ctx.model.nLayers * 2 * d;
  const normal = (n: number) => Float32Array.from({ length: n }, () => c.initStd * gaussian(ctx.random));
  const uniform = (n: number, fanIn: number) => Float32Array.from({ length: n }, () => (ctx.random() * 2 - 1) / Math.sqrt(fanIn));
  if (!c.projection) {
    const data = c.prefixInit === 'activations' && ctx.keyValues ? activationTable(ctx, ctx.keyValues) : normal(P * width);
    return new Map([[PREFIX_KEY, { shape: [P, width], data }]]);
  }
  const H = c.encoderHiddenSize ?? ctx.model.dim;
  return new Map([
    [encoderKeys.embedding, { shape: [P, d], data: normal(P * d) }],
    [encoderKeys.w1, { shape: [H, d], data: uniform(H * d, d) }],
    [encoderKeys.b1, { shape: [H], data: uniform(H, d) }],
    [encoderKeys.w2, { shape: [width, H], data: uniform(width * H, H) }],
    [encoderKeys.b2, { shape: [width], data: uniform(width, H) }],
  ]);
}

/** tanh from the catalogue (F.tanh: finite for every x, NaN-free gradient). */
export const tanh = F.tanh;

/** The prefix table [P, L·2·d_kv] of a graph, built once per graph. */
const tables = new WeakMap<Graph, Tensor>();
function prefixTable(c: PrefixTuningConfig, b: BuildContext): Tensor {
  let t = tables.get(b.graph);
  if (t) return t;
  t = !c.projection ? b.param(PREFIX_KEY) : b.graph.within('prefix_tuning.encoder', () => {
    const hidden = tanh(F.add(F.matmul(b.param(encoderKeys.embedding), b.param(encoderKeys.w1), { transB: true }), b.param(encoderKeys.b1)));
    return F.add(F.matmul(hidden, b.param(encoderKeys.w2), { transB: true }), b.param(encoderKeys.b2));
  });
  tables.set(b.graph, t);
  return t;
}

export function prefixKeysValues(ctx: AttentionPrefixContext, c: PrefixTuningConfig, b: BuildContext): { k: Tensor; v: Tensor } {
  const P = c.numVirtualTokens, { kvHeads: H, headDim: D, batch: B, layer: l } = ctx;
  const table = F.reshape(prefixTable(c, b), [P, -1, H, D]);
  const block = (i: number) => F.broadcastTo(F.reshape(F.slice(table, 1, i, i + 1), [1, P, H, D]), [B, P, H, D]);
  return ctx.graph.within(`model.layers.${l}.prefix`, () => ({ k: block(2 * l), v: block(2 * l + 1) }));
}

/** The prefix table in float64 from the MLP's parameters (what PEFT saves in inference mode). */
export function projectPrefix(params: ParamStore, P: number): Float32Array {
  const get = (k: string) => params.get(k)!;
  const [E, W1, B1, W2, B2] = [get(encoderKeys.embedding), get(encoderKeys.w1), get(encoderKeys.b1), get(encoderKeys.w2), get(encoderKeys.b2)];
  const d = E.shape[1]!, H = W1.shape[0]!, width = W2.shape[0]!;
  const out = new Float32Array(P * width), h = new Float64Array(H);
  for (let p = 0; p < P; p++) {
    for (let i = 0; i < H; i++) {
      let s = B1.data[i]!;
      for (let j = 0; j < d; j++) s += W1.data[i * d + j]! * E.data[p * d + j]!;
      h[i] = Math.tanh(s);
    }
    for (let o = 0; o < width; o++) {
      let s = B2.data[o]!;
      for (let i = 0; i < H; i++) s += W2.data[o * H + i]! * h[i]!;
      out[p * width + o] = s;
    }
  }
  return out;
}
