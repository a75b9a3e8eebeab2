/**
 * The pieces every decoder builder (Llama, Gemma, GPT-2 and their relatives) starts from: weights declared
 * once by name, the token and KV-cache inputs, and the linear layer that adapters hook into. Kept in one
 * place so that a hook, a weight dtype or a cache input means the same thing in every family.
 */
import * as F from '../graph/api.js';
import type { Graph, Tensor } from '../graph/graph.js';
import type { LinearContext, LlamaGraphOptions } from './llama.js';

export interface DecoderGraphParts {
  /** Every parameter declared so far, by Hugging Face name (the LlamaGraph's `weights`). */
  weights: Map<string, Tensor>;
  /** The parameter `name` of `shape`, declared on first use (the output head may be applied several times). */
  w(name: string, shape: number[]): Tensor;
  /** True when the graph decodes against a KV cache (`cacheLen` given). */
  decoding: boolean;
  ids: Tensor;
  /** Absolute positions of the T new tokens, the cache write offset and the valid cache length: decoding only. */
  positions?: Tensor;
  pos?: Tensor;
  kvLen?: Tensor;
  /** x Wᵀ (+ b) for the module `name`, routed through `hooks.linear` so adapters can wrap it. */
  linear(name: string, x: Tensor, inF: number, outF: number, bias?: boolean): Tensor;
}

/** `biasByDefault`: whether the family's projections carry biases unless told otherwise (GPT-2 does). */
export function decoderGraphParts(g: Graph, o: LlamaGraphOptions, biasByDefault: boolean): DecoderGraphParts {
  const { batch: B, seq: T } = o;
  const weights = new Map<string, Tensor>();
  const w = (name: string, shape: number[]): Tensor => {
    const have = weights.get(name);
    if (have) return have;
    const t = g.param(name, shape, o.weightDtype?.(name) ?? 'f32');
    weights.set(name, t);
    return t;
  };
  const decoding = o.cacheLen !== undefined;
  const ids = g.input('input_ids', [B, T], 'i32');
  const positions = decoding ? g.input('positions', [T], 'i32') : undefined;
  const pos = decoding ? g.input('cache_pos', [1], 'i32') : undefined;
  const kvLen = decoding ? g.input('kv_len', [1], 'i32') : undefined;
  const linear = (name: string, x: Tensor, inF: number, outF: number, bias = biasByDefault): Tensor => {
    const weight = w(`${name}.weight`, [outF, inF]);
    const b = bias || o.hooks?.biases?.has(name) ? w(`${name}.bias`, [outF]) : undefined;
    const base = (xx: Tensor = x): Tensor => g.within(name, () => {
      const y = F.matmul(xx, weight, { transB: true });
      return b ? F.add(y, b) : y;
    });
    const ctx: LinearContext = { graph: g, name, x, weight, inFeatures: inF, outFeatures: outF, base, ...(b ? { bias: b } : {}) };
    return o.hooks?.linear ? o.hooks.linear(ctx) : base();
  };
  return { weights, w, decoding, ids, ...(positions ? { positions, pos: pos!, kvLen: kvLen! } : {}), linear };
}
