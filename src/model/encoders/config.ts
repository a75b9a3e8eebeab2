/**
 * BERT-family encoders (BERT, RoBERTa, DistilBERT): their config from a Hugging Face config.json, the
 * tensors a checkpoint must have, and the modules adapters can target, all under Hugging Face names
 * (`bert.encoder.layer.0.attention.self.query`, `distilbert.transformer.layer.0.attention.q_lin`, …) so that
 * PEFT `target_modules` and `modules_to_save` mean what they mean in PEFT.
 */
import type { ModuleInfo } from '../../adapters/types.js';

export type EncoderKind = 'bert' | 'roberta' | 'distilbert';
export const ENCODER_MODEL_TYPES: readonly EncoderKind[] = ['bert', 'roberta', 'distilbert'];

/** What the classifier head predicts: one label per sequence, or one per token. */
export type EncoderTask = 'seq-cls' | 'token-cls';

export interface EncoderConfig {
  kind: EncoderKind;
  vocabSize: number;
  dim: number;
  nLayers: number;
  nHeads: number;
  /** Feed-forward width (intermediate_size, DistilBERT hidden_dim). */
  hiddenDim: number;
  maxPositions: number;
  /** Segment embeddings (0 for DistilBERT, which has none). */
  typeVocabSize: number;
  normEps: number;
  padTokenId: number;
  /** hidden_act: `gelu` is the exact erf form; `gelu_new` / `gelu_pytorch_tanh` the tanh form. */
  act: 'gelu' | 'gelu_tanh' | 'relu';
  /** Standard deviation of a freshly initialised head (initializer_range). */
  initializerRange: number;
  /** Label names by id (config.json id2label; `LABEL_i` when only num_labels is given). */
  labels: string[];
}

/** Prefix of the encoder's own tensors (`bert.`, `roberta.`, `distilbert.`). */
export const encoderPrefix = (c: Pick<EncoderConfig, 'kind'>): string => `${c.kind}.`;

/** Offset of the first real position (RoBERTa counts positions from padding_idx + 1). */
export const positionOffset = (c: EncoderConfig): number => (c.kind === 'roberta' ? c.padTokenId + 1 : 0);

function int(cfg: Record<string, unknown>, key: string, name: string, fallback?: number): number {
  const v = cfg[key] ?? fallback;
  if (!(Number.isSafeInteger(v) && (v as number) > 0)) throw new Error(`${name}: ${key} is ${JSON.stringify(cfg[key])}, expected a positive whole number`);
  return v as number;
}

/** Label names from id2label (ids 0…n−1) or num_labels; none when the config declares neither. */
export function configLabels(cfg: Record<string, unknown>, name: string): string[] {
  const raw = cfg.id2label;
  if (raw !== undefined && raw !== null) {
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${name}: id2label must be an object {"0": "name", …}`);
    const entries = Object.entries(raw as Record<string, unknown>);
    const out: string[] = [];
    for (const [k, v] of entries) {
      const i = Number(k);
      if (!Number.isInteger(i) || i < 0 || i >= entries.length || typeof v !== 'string') throw new Error(`${name}: id2label must map ids 0…${entries.length - 1} to names (got ${JSON.stringify(k)}: ${JSON.stringify(v)})`);
      out[i] = v;
    }
    return out;
  }
  if (cfg.num_labels !== undefined) return Array.from({ length: int(cfg, 'num_labels', name) }, (_, i) => `LABEL_${i}`);
  return [];
}

/** The config of a BERT, RoBERTa or DistilBERT config.json. */
export function encoderConfig(cfg: Record<string, unknown>, name = 'config.json'): EncoderConfig {
  const kind = cfg.model_type;
  if (typeof kind !== 'string' || !(ENCODER_MODEL_TYPES as readonly string[]).includes(kind)) {
    throw new Error(`${name}: model_type ${JSON.stringify(kind)} is not an encoder this library builds (${ENCODER_MODEL_TYPES.join(', ')})`);
  }
  const d = kind === 'distilbert';
  const actRaw = (d ? cfg.activation : cfg.hidden_act) ?? 'gelu';
  const act = actRaw === 'gelu' ? 'gelu' : actRaw === 'gelu_new' || actRaw === 'gelu_pytorch_tanh' ? 'gelu_tanh' : actRaw === 'relu' ? 'relu' : undefined;
  if (!act) throw new Error(`${name}: activation ${JSON.stringify(actRaw)} is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)`);
  if (!d && cfg.position_embedding_type !== undefined && cfg.position_embedding_type !== 'absolute') {
    throw new Error(`${name}: position_embedding_type ${JSON.stringify(cfg.position_embedding_type)} is not supported (only absolute)`);
  }
  const c: EncoderConfig = {
    kind: kind as EncoderKind,
    vocabSize: int(cfg, 'vocab_size', name),
    dim: int(cfg, d ? 'dim' : 'hidden_size', name),
    nLayers: int(cfg, d ? 'n_layers' : 'num_hidden_layers', name),
    nHeads: int(cfg, d ? 'n_heads' : 'num_attention_heads', name),
    hiddenDim: int(cfg, d ? 'hidden_dim' : 'intermediate_size', name),
    maxPositions: int(cfg, 'max_position_embeddings', name, 512),
    typeVocabSize: d ? 0 : int(cfg, 'type_vocab_size', name, 2),
    normEps: d ? 1e-12 : typeof cfg.layer_norm_eps === 'number' ? cfg.layer_norm_eps : 1e-12,
    padTokenId: typeof cfg.pad_token_id === 'number' ? cfg.pad_token_id : kind === 'roberta' ? 1 : 0,
    act,
    initializerRange: typeof cfg.initializer_range === 'number' ? cfg.initializer_range : 0.02,
    labels: configLabels(cfg, name),
  };
  if (c.dim % c.nHeads !== 0) throw new Error(`${name}: hidden size ${c.dim} is not a multiple of the ${c.nHeads} heads`);
  return c;
}

/** The encoder's linear modules of one layer: [suffix, in, out] in graph order. */
function layerLinears(c: EncoderConfig): [string, number, number][] {
  const D = c.dim, H = c.hiddenDim;
  return c.kind === 'distilbert'
    ? [['attention.q_lin', D, D], ['attention.k_lin', D, D], ['attention.v_lin', D, D], ['attention.out_lin', D, D], ['ffn.lin1', D, H], ['ffn.lin2', H, D]]
    : [['attention.self.query', D, D], ['attention.self.key', D, D], ['attention.self.value', D, D], ['attention.output.dense', D, D], ['intermediate.dense', D, H], ['output.dense', H, D]];
}

/** Module name of layer l (`bert.encoder.layer.3`, `distilbert.transformer.layer.3`). */
export const layerName = (c: EncoderConfig, l: number): string =>
  c.kind === 'distilbert' ? `distilbert.transformer.layer.${l}` : `${c.kind}.encoder.layer.${l}`;

/** The head's linear modules for a task: name, in, out (trained whole, saved as PEFT modules_to_save). */
export function headLinears(c: EncoderConfig, task: EncoderTask, numLabels: number): [string, number, number][] {
  const D = c.dim;
  if (task === 'token-cls') return [['classifier', D, numLabels]];
  if (c.kind === 'bert') return [['bert.pooler.dense', D, D], ['classifier', D, numLabels]];
  if (c.kind === 'roberta') return [['classifier.dense', D, D], ['classifier.out_proj', D, numLabels]];
  return [['pre_classifier', D, D], ['classifier', D, numLabels]];
}

/** Every module adapters can target: the word embedding, then each layer's linears (not the head). */
export function encoderModules(c: EncoderConfig): ModuleInfo[] {
  const out: ModuleInfo[] = [{ name: `${encoderPrefix(c)}embeddings.word_embeddings`, kind: 'embedding', inFeatures: c.vocabSize, outFeatures: c.dim }];
  for (let l = 0; l < c.nLayers; l++) {
    for (const [s, i, o] of layerLinears(c)) out.push({ name: `${layerName(c, l)}.${s}`, kind: 'linear', inFeatures: i, outFeatures: o, layer: l });
  }
  return out;
}

/** The encoder's tensors (without the head) and their shapes. */
export function encoderTensorShapes(c: EncoderConfig): Map<string, number[]> {
  const p = encoderPrefix(c), D = c.dim, out = new Map<string, number[]>();
  out.set(`${p}embeddings.word_embeddings.weight`, [c.vocabSize, D]);
  out.set(`${p}embeddings.position_embeddings.weight`, [c.maxPositions, D]);
  if (c.typeVocabSize > 0) out.set(`${p}embeddings.token_type_embeddings.weight`, [c.typeVocabSize, D]);
  out.set(`${p}embeddings.LayerNorm.weight`, [D]);
  out.set(`${p}embeddings.LayerNorm.bias`, [D]);
  const norms = c.kind === 'distilbert' ? ['sa_layer_norm', 'output_layer_norm'] : ['attention.output.LayerNorm', 'output.LayerNorm'];
  for (let l = 0; l < c.nLayers; l++) {
    for (const [s, i, o] of layerLinears(c)) { out.set(`${layerName(c, l)}.${s}.weight`, [o, i]); out.set(`${layerName(c, l)}.${s}.bias`, [o]); }
    for (const n of norms) { out.set(`${layerName(c, l)}.${n}.weight`, [D]); out.set(`${layerName(c, l)}.${n}.bias`, [D]); }
  }
  return out;
}

/** The LlamaConfig-shaped summary that adapter code (size checks, PEFT save/load) reads. */
export function adapterModelConfig(c: EncoderConfig) {
  return {
    dim: c.dim, hiddenDim: c.hiddenDim, nLayers: c.nLayers, nHeads: c.nHeads, nKvHeads: c.nHeads, vocabSize: c.vocabSize,
    maxSeqLen: c.maxPositions - positionOffset(c), normEps: c.normEps, ropeTheta: 10000, tiedEmbeddings: false, qkvBias: true,
    ropeLayout: 'half' as const, architecture: c.kind,
  };
}
