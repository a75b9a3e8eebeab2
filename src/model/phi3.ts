/**
 * Phi-3 and Phi-3.5 decoders (Hugging Face `model_type: "phi3"`): Llama's RMSNorm, rotate-half RoPE and
 * SwiGLU, with q, k and v fused into `self_attn.qkv_proj` [(Hq + 2·Hkv)·headDim, D] and the MLP's gate and up
 * into `mlp.gate_up_proj` [2·I, D] (gate rows first). The graph is Llama's (`fusedProjections`), which splits
 * the fused outputs along their last axis; adapters target the fused modules by their own names, as PEFT does
 * (`qkv_proj`, `o_proj`, `gate_up_proj`, `down_proj`).
 *
 * Refused by name: `partial_rotary_factor` below 1 (Phi-4-mini rotates only part of each head) and rope
 * scalings other than those src/model/rope-scaling.ts computes. A `sliding_window` slides on every layer, as
 * Llama's graph does for Mistral (Hugging Face's Phi3Attention passes it to every layer).
 */
import type { LlamaConfig } from '../formats/checkpoint.js';
import { configHeadDim } from '../formats/checkpoint.js';
import { FormatError } from '../formats/binary.js';
import { hfLlamaConfig } from '../formats/hf.js';
import type { ModuleInfo } from '../adapters/types.js';
import type { DecoderFamily } from './families.js';
import { buildLlama } from './llama.js';

/** The four projections of a Phi-3 layer, in Hugging Face naming. */
export const PHI3_PROJECTIONS = ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'] as const;

/** A Phi-3 config from config.json; unsupported values throw a FormatError naming `name`. */
export function hfPhi3Config(cfg: Record<string, unknown>, name = 'config.json'): LlamaConfig {
  const prf = cfg.partial_rotary_factor;
  if (prf !== undefined && prf !== null && prf !== 1) {
    throw new FormatError(name, `partial_rotary_factor ${JSON.stringify(prf)} is not supported (phi3 models that rotate only part of each head, as Phi-4-mini, need partial rotary embeddings)`);
  }
  // Phi-3 checkpoints carry no attention biases; `attention_bias` is not a Phi-3 option.
  const { model_type: _type, attention_bias: _bias, ...rest } = cfg;
  const c = hfLlamaConfig({ ...rest, model_type: 'llama' }, name);
  // Phi-3 names its original context at the top level; rope scalings read it from there when they do not carry it.
  const omp = cfg.original_max_position_embeddings;
  if (c.ropeScaling && typeof omp === 'number' && c.ropeScaling.original_max_position_embeddings === undefined) {
    c.ropeScaling = { ...c.ropeScaling, original_max_position_embeddings: omp };
  }
  return { ...c, architecture: 'phi3', fusedProjections: true, qkvBias: false };
}

/** The tensors of a Phi-3 checkpoint with their shapes. */
export function phi3TensorShapes(c: LlamaConfig): Map<string, number[]> {
  const hd = configHeadDim(c), qDim = c.nHeads * hd, kvDim = c.nKvHeads * hd;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [c.vocabSize, c.dim]);
  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}.`;
    m.set(`${p}input_layernorm.weight`, [c.dim]);
    m.set(`${p}self_attn.qkv_proj.weight`, [qDim + 2 * kvDim, c.dim]);
    m.set(`${p}self_attn.o_proj.weight`, [c.dim, qDim]);
    m.set(`${p}post_attention_layernorm.weight`, [c.dim]);
    m.set(`${p}mlp.gate_up_proj.weight`, [2 * c.hiddenDim, c.dim]);
    m.set(`${p}mlp.down_proj.weight`, [c.dim, c.hiddenDim]);
  }
  m.set('model.norm.weight', [c.dim]);
  if (!c.tiedEmbeddings) m.set('lm_head.weight', [c.vocabSize, c.dim]);
  return m;
}

/** Every adaptable module of a Phi-3 model, in graph order. */
export function phi3Modules(c: LlamaConfig): ModuleInfo[] {
  const hd = configHeadDim(c), qDim = c.nHeads * hd, kvDim = c.nKvHeads * hd;
  const shapes: Record<(typeof PHI3_PROJECTIONS)[number], [string, number, number]> = {
    qkv_proj: ['self_attn', c.dim, qDim + 2 * kvDim], o_proj: ['self_attn', qDim, c.dim],
    gate_up_proj: ['mlp', c.dim, 2 * c.hiddenDim], down_proj: ['mlp', c.hiddenDim, c.dim],
  };
  const out: ModuleInfo[] = [{ name: 'model.embed_tokens', kind: 'embedding', inFeatures: c.vocabSize, outFeatures: c.dim }];
  for (let l = 0; l < c.nLayers; l++) {
    for (const p of PHI3_PROJECTIONS) {
      const [block, inF, outF] = shapes[p];
      out.push({ name: `model.layers.${l}.${block}.${p}`, kind: 'linear', inFeatures: inF, outFeatures: outF, layer: l });
    }
  }
  if (!c.tiedEmbeddings) out.push({ name: 'lm_head', kind: 'linear', inFeatures: c.dim, outFeatures: c.vocabSize });
  return out;
}

export const phi3Family: DecoderFamily = {
  name: 'phi3',
  hfModelTypes: ['phi3'],
  ggufArchitectures: ['phi3'],
  hfConfig: (cfg, name) => hfPhi3Config(cfg, name),
  tensorShapes: (c) => phi3TensorShapes(c),
  modules: (c) => phi3Modules(c),
  linearSuffixes: PHI3_PROJECTIONS,
  build: (g, c, o) => buildLlama(g, { ...c, fusedProjections: true }, o),
  toHfConfig: (c, x) => phi3HfConfigJson(c, x),
};

/**
 * config.json for a Phi-3 model. Phi-3 keeps original_max_position_embeddings at the top level and its
 * configuration class takes only type, short_factor and long_factor in a LongRoPE rope_scaling.
 */
function phi3HfConfigJson(c: LlamaConfig, x: { torchDtype: string; bosId?: number; eosId?: number }): Record<string, unknown> {
  const { original_max_position_embeddings: omp, ...scaling } = c.ropeScaling ?? {};
  return {
    architectures: ['Phi3ForCausalLM'], model_type: 'phi3', hidden_size: c.dim, intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers, num_attention_heads: c.nHeads, num_key_value_heads: c.nKvHeads, vocab_size: c.vocabSize,
    max_position_embeddings: c.maxSeqLen, rms_norm_eps: c.normEps, rope_theta: c.ropeTheta, tie_word_embeddings: c.tiedEmbeddings,
    hidden_act: 'silu', torch_dtype: x.torchDtype, sliding_window: c.slidingWindow ?? null,
    ...(c.headDim !== undefined ? { head_dim: c.headDim } : {}), ...(c.ropeScaling ? { rope_scaling: scaling } : {}),
    ...(omp !== undefined ? { original_max_position_embeddings: omp } : {}),
    ...(x.bosId !== undefined ? { bos_token_id: x.bosId } : {}), ...(x.eosId !== undefined ? { eos_token_id: x.eosId } : {}),
  };
}
