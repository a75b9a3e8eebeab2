/** Writing a whole model (merge, prune-vocab): Hugging Face layout and/or GGUF. */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type LlamaCheckpoint, configHeadDim, tensorF32, withRopeLayout } from '../formats/checkpoint.js';
import { checkpointToGguf } from '../formats/gguf-llama.js';
import { type SafetensorsWriteTensor, writeSafetensors } from '../formats/safetensors.js';
import { GGML_TYPE_OF } from '../quant/codec.js';
import { sentencePieceToHfJson, tokenizerConfigJson } from '../tokenizer/index.js';
import { writeFileAtomic } from './output.js';
import { familyOf } from '../model/families.js';
import { GEMMA_MODEL_TYPES, gemmaHfConfigJson } from '../model/gemma.js';

export const MODEL_DTYPES = ['f32', 'f16', 'q8_0', 'q4_0'] as const;
const err = (s: string): void => { process.stderr.write(`${s}\n`); };

/** Families `checkpointToGguf` writes. */
const GGUF_FAMILIES = ['llama', 'phi3', 'gpt2'];

export type ModelFormat = 'safetensors' | 'gguf' | 'both';

/**
 * A whole model into folder `out`: Hugging Face layout (model.safetensors, config.json, tokenizer.json and
 * tokenizer_config.json) and/or model.gguf; 2-D weights as `dtype` (f32 or f16; q8_0/q4_0 in GGUF only).
 */
export async function writeModel(ckpt: LlamaCheckpoint, out: string, format: ModelFormat, dtype: (typeof MODEL_DTYPES)[number]): Promise<string[]> {
  // Refused before anything is written (`both` would otherwise leave a half-written folder).
  const family = familyOf(ckpt.config).name;
  if (format !== 'safetensors' && !GGUF_FAMILIES.includes(family)) throw new Error(`GGUF export of ${ckpt.config.architecture} models is not supported; write the Hugging Face layout with --format safetensors (GGUF is written for the ${GGUF_FAMILIES.join(', ')} families; this is a ${family} model)`);
  await mkdir(out, { recursive: true });
  const written: string[] = [];
  if (format !== 'gguf') {
    const half = withRopeLayout(ckpt, 'half'), { toHf } = familyOf(ckpt.config);
    // GPT-2's Conv1D weights go back to their file orientation, [in, out].
    const hf = toHf ? { ...half, tensors: new Map([...half.tensors].map(([k, t]) => [k, toHf(k, t)])) } : half;
    const st = dtype === 'f16' ? 'F16' : 'F32';
    await writeFileAtomic(join(out, 'model.safetensors'), writeSafetensors([...hf.tensors].map(([k, t]) => [k, { shape: t.shape, data: tensorF32(t), dtype: t.shape.length === 2 ? st : 'F32' }] as [string, SafetensorsWriteTensor]), { metadata: { format: 'pt' } }));
    await writeFileAtomic(join(out, 'config.json'), `${JSON.stringify(hfConfigJson(hf, dtype === 'f16' ? 'float16' : 'float32'), null, 2)}\n`);
    written.push('model.safetensors', 'config.json');
    if (ckpt.tokenizer?.kind === 'sentencepiece') {
      await writeFileAtomic(join(out, 'tokenizer.json'), JSON.stringify(sentencePieceToHfJson(ckpt.tokenizer)));
      await writeFileAtomic(join(out, 'tokenizer_config.json'), `${JSON.stringify(tokenizerConfigJson(ckpt.tokenizer, ckpt.config.maxSeqLen), null, 2)}\n`);
      written.push('tokenizer.json', 'tokenizer_config.json');
    } else if (ckpt.tokenizer?.json) {
      await writeFileAtomic(join(out, 'tokenizer.json'), JSON.stringify(ckpt.tokenizer.json));
      written.push('tokenizer.json');
    }
    err(`wrote ${written.map((w) => `${out}/${w}`).join(', ')}`);
  }
  if (format !== 'safetensors') {
    await writeFileAtomic(join(out, 'model.gguf'), checkpointToGguf(ckpt, { type: dtype === 'f32' ? 'F32' : GGML_TYPE_OF[dtype] }));
    written.push('model.gguf');
    err(`wrote ${out}/model.gguf`);
  }
  return written;
}


/** Hugging Face model classes of the architectures written under their own name (others as llama). */
const HF_CLASSES: Record<string, string> = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM', mistral: 'MistralForCausalLM', granite: 'GraniteForCausalLM' };

/** The config.json of a model written in Hugging Face layout (its family's form: Llama-shaped or Gemma). */
export function hfConfigJson(c: LlamaCheckpoint, torchDtype = 'float32'): Record<string, unknown> {
  const k = c.config, family = familyOf(k);
  if (family.toHfConfig) return family.toHfConfig(k, { torchDtype, ...(c.tokenizer ? { bosId: c.tokenizer.bosId, eosId: c.tokenizer.eosId } : {}) });
  if (GEMMA_MODEL_TYPES.includes(k.architecture)) {
    return gemmaHfConfigJson(k, torchDtype, { ...(c.tokenizer?.bosId !== undefined ? { bosId: c.tokenizer.bosId } : {}), ...(c.tokenizer?.eosId !== undefined ? { eosId: c.tokenizer.eosId } : {}) });
  }
  if (familyOf(k).name !== 'llama') throw new Error(`writing a Hugging Face config for ${k.architecture} models is not supported`);
  // Qwen2's q/k/v biases and Qwen3's q/k norms come with the model type; a Qwen2 keeps its name only with its
  // biases; a windowed model without either is written as Mistral, whose transformers class reads sliding_window.
  const granite = k.architecture === 'granite' || k.embeddingMultiplier !== undefined || k.residualMultiplier !== undefined || k.logitsScaling !== undefined;
  const type = k.qkNorm ? 'qwen3' : granite ? 'granite' : k.architecture === 'qwen2' && k.qkvBias ? 'qwen2' : k.slidingWindow !== undefined && !k.qkvBias ? 'mistral' : 'llama';
  if (type !== 'granite' && k.attentionScale !== undefined) throw new Error(`a ${type} config.json has no key for an attention scale other than 1/√head_dim`);
  return {
    architectures: [HF_CLASSES[type]], model_type: type, hidden_size: k.dim,
    ...(k.headDim !== undefined ? { head_dim: k.headDim } : {}), intermediate_size: k.hiddenDim,
    num_hidden_layers: k.nLayers, num_attention_heads: k.nHeads, num_key_value_heads: k.nKvHeads, vocab_size: k.vocabSize,
    max_position_embeddings: k.maxSeqLen, rms_norm_eps: k.normEps, rope_theta: k.ropeTheta, tie_word_embeddings: k.tiedEmbeddings,
    attention_bias: k.qkvBias, hidden_act: 'silu', torch_dtype: torchDtype, ...(k.ropeScaling ? { rope_scaling: k.ropeScaling } : {}),
    ...(k.slidingWindow !== undefined ? { sliding_window: k.slidingWindow, ...(k.layerTypes ? { layer_types: k.layerTypes } : {}) } : {}),
    // Qwen2 reads the window only with use_sliding_window, on layers from max_window_layers on when layer_types is absent.
    ...(k.slidingWindow !== undefined && type === 'qwen2' ? { use_sliding_window: true, ...(k.layerTypes ? {} : { max_window_layers: 0 }) } : {}),
    ...(type === 'granite' ? {
      embedding_multiplier: k.embeddingMultiplier ?? 1, residual_multiplier: k.residualMultiplier ?? 1,
      logits_scaling: k.logitsScaling ?? 1, attention_multiplier: k.attentionScale ?? 1 / Math.sqrt(configHeadDim(k)),
    } : {}),
    bos_token_id: c.tokenizer?.bosId ?? 1, eos_token_id: c.tokenizer?.eosId ?? 2,
  };
}

