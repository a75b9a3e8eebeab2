/**
 * BERT-family encoders from GGUF files of llama.cpp's `bert` architecture, as convert_hf_to_gguf.py writes
 * them (BertModel, and RobertaModel and DistilBertModel, which write the same architecture) and llama.cpp's
 * loader reads them (src/llama-arch.cpp names, src/llama-model.cpp shapes):
 *
 *   token_embd               embeddings.word_embeddings       [V, D]
 *   position_embd            embeddings.position_embeddings   [context_length, D]
 *   token_types              embeddings.token_type_embeddings [types, D] (absent for DistilBERT)
 *   token_embd_norm          embeddings.LayerNorm             (weight and bias, as every norm and projection)
 *   blk.N.attn_q / _k / _v   attention.self.query / key / value      (DistilBERT q_lin / k_lin / v_lin)
 *   blk.N.attn_output        attention.output.dense                  (out_lin)
 *   blk.N.attn_output_norm   attention.output.LayerNorm  (post-LN)   (sa_layer_norm)
 *   blk.N.ffn_up             intermediate.dense                      (ffn.lin1)
 *   blk.N.ffn_down           output.dense                            (ffn.lin2)
 *   blk.N.layer_output_norm  output.LayerNorm            (post-LN)   (output_layer_norm)
 *   cls                      [D, D]: RoBERTa's classifier.dense (or DistilBERT's pre_classifier)
 *   cls.output               [L, D]: RoBERTa's classifier.out_proj, or BERT's `classifier`, renamed so when
 *                            config.json names its labels (then `bert.classifier.output_labels` lists them)
 *
 * Keys: bert.block_count, context_length, embedding_length, feed_forward_length, attention.head_count,
 * attention.layer_norm_epsilon, attention.causal (false), tokenizer.ggml.token_type_count.
 *
 * What a GGUF encoder lacks: the converter drops BERT's pooler (`pooler.dense`) and every MLM head, and the file
 * does not say whether it came from BERT, RoBERTa or DistilBERT, nor the activation, nor the head's init range.
 * So it is read as a BERT-shaped encoder (kind `bert`, module names `bert.encoder.layer.N.…`): RoBERTa's
 * position table is already cut to start at 0 (the converter drops its pad + 1 first rows), DistilBERT simply
 * has no token-type table. `cls` is held as `bert.pooler.dense` and `cls.output` as `classifier`: dense → tanh →
 * out on the first token is RoBERTa's head and BERT's pooler + classifier alike, and it is what llama.cpp's
 * rank pooling computes. A BERT sequence classifier's file keeps its classifier but not its pooler; a
 * DistilBERT one's pre_classifier is read with tanh (llama.cpp's reading too) where DistilBERT used ReLU.
 * Head modules the file lacks are initialised fresh by `train --task` (`withHead`: weights normal with std
 * 0.02, biases zero), trained whole and saved under PEFT's modules_to_save. The activation is the exact (erf)
 * GELU these models are trained with (llama.cpp evaluates BERT with its tanh approximation).
 */
import { FormatError, shortestF32 } from '../../formats/binary.js';
import type { NamedTensor } from '../../formats/checkpoint.js';
import { type GgufFile, type GgufHeader, ggufMeta, ggufNumber } from '../../formats/gguf.js';
import { ggufStoredTensor, ggufTokenizerData, readGgufHeader } from '../../formats/gguf-llama.js';
import { type ByteSource, bytesSource } from '../../formats/source.js';
import { readStoredTensor } from '../../formats/storage.js';
import { type EncoderCheckpoint } from './checkpoint.js';
import { type EncoderConfig, adapterModelConfig, encoderTensorShapes } from './config.js';

const LAYER_NAMES: ReadonlyArray<[string, string]> = [
  ['attn_q', 'attention.self.query'],
  ['attn_k', 'attention.self.key'],
  ['attn_v', 'attention.self.value'],
  ['attn_output', 'attention.output.dense'],
  ['attn_output_norm', 'attention.output.LayerNorm'],
  ['ffn_up', 'intermediate.dense'],
  ['ffn_down', 'output.dense'],
  ['layer_output_norm', 'output.LayerNorm'],
];
const GLOBAL_NAMES: ReadonlyArray<[string, string]> = [
  ['token_embd', 'bert.embeddings.word_embeddings'],
  ['position_embd', 'bert.embeddings.position_embeddings'],
  ['token_types', 'bert.embeddings.token_type_embeddings'],
  ['token_embd_norm', 'bert.embeddings.LayerNorm'],
];

/** The GGUF name of an encoder tensor held under `bert.` names (undefined for head tensors). */
export function bertHfToGguf(name: string): string | undefined {
  const m = /^bert\.encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
  if (m) {
    const g = LAYER_NAMES.find(([, h]) => h === m[2])?.[0];
    return g === undefined ? undefined : `blk.${m[1]}.${g}.${m[3]}`;
  }
  const g = /^(.+)\.(weight|bias)$/.exec(name);
  const n = g ? GLOBAL_NAMES.find(([, h]) => h === g[1])?.[0] : undefined;
  return n === undefined ? undefined : `${n}.${g![2]}`;
}

/** Whether a GGUF header is an encoder's (`general.architecture` bert). */
export const isGgufEncoder = (file: GgufHeader): boolean => ggufMeta(file, 'general.architecture') === 'bert';

/** The encoder config of a bert GGUF file, and where its head tensors go; errors name the key or tensor. */
export function ggufEncoderConfig(file: GgufHeader): { config: EncoderConfig; head: Map<string, string> } {
  const fail = (p: string): never => { throw new FormatError(file.name, p); };
  const arch = ggufMeta(file, 'general.architecture');
  if (arch !== 'bert') fail(`architecture ${JSON.stringify(arch)} is not an encoder this library reads (bert)`);
  const req = (k: string): number => {
    const v = ggufNumber(file, `bert.${k}`);
    if (v === undefined) return fail(`metadata bert.${k} is missing`);
    if (!(Number.isSafeInteger(v) && v > 0)) fail(`metadata bert.${k} is ${v}, expected a positive integer`);
    return v;
  };
  if (ggufMeta(file, 'bert.attention.causal') === true) fail('metadata bert.attention.causal is true; a BERT encoder attends both ways');
  const embd = file.tensorsByName.get('token_embd.weight') ?? fail('tensor token_embd.weight (bert.embeddings.word_embeddings.weight) is missing');
  const types = file.tensorsByName.get('token_types.weight');
  const typeCount = ggufNumber(file, 'tokenizer.ggml.token_type_count');
  if (types && typeCount !== undefined && types.shape[0] !== typeCount) fail(`tensor token_types.weight has ${types.shape[0]} rows but tokenizer.ggml.token_type_count is ${typeCount}`);
  const eps = ggufNumber(file, 'bert.attention.layer_norm_epsilon') ?? fail('metadata bert.attention.layer_norm_epsilon is missing');
  if (!(Number.isFinite(eps) && eps > 0)) fail(`metadata bert.attention.layer_norm_epsilon is ${eps}, expected a positive number`);
  const nLayers = req('block_count');
  // Sixteen tensors a layer: checked before anything is sized by the count.
  if (nLayers * 16 > file.tensors.length) fail(`metadata bert.block_count is ${nLayers} but the file has ${file.tensors.length} tensors (16 per layer)`);
  // The head: `cls` [D, D] then `cls.output` [L, D]; a lone `cls` of L rows is BERT's classifier under dummy labels.
  const dim = req('embedding_length');
  const head = new Map<string, string>();
  const cls = file.tensorsByName.get('cls.weight'), out = file.tensorsByName.get('cls.output.weight');
  if (cls) head.set('cls', out || cls.shape[0] === dim ? 'bert.pooler.dense' : 'classifier');
  if (out) head.set('cls.output', 'classifier');
  const classifier = head.get('cls.output') ? out : head.get('cls') === 'classifier' ? cls : undefined;
  let labels: string[] = [];
  const named = ggufMeta(file, 'bert.classifier.output_labels');
  if (named !== undefined) {
    if (!Array.isArray(named) || !named.every((l) => typeof l === 'string')) fail('metadata bert.classifier.output_labels should be an array of strings');
    labels = named as string[];
    if (classifier && classifier.shape[0] !== labels.length) fail(`metadata bert.classifier.output_labels names ${labels.length} labels but the classifier tensor has ${classifier.shape[0]} rows`);
  } else if (classifier) {
    labels = Array.from({ length: classifier.shape[0]! }, (_, i) => `LABEL_${i}`);
  }
  const pad = ggufNumber(file, 'tokenizer.ggml.padding_token_id');
  const config: EncoderConfig = {
    kind: 'bert', vocabSize: embd.shape[0]!, dim, nLayers, nHeads: req('attention.head_count'), hiddenDim: req('feed_forward_length'),
    maxPositions: req('context_length'), typeVocabSize: types ? types.shape[0]! : 0, normEps: shortestF32(eps),
    padTokenId: pad !== undefined && pad >= 0 && pad < embd.shape[0]! ? pad : 0, act: 'gelu', initializerRange: 0.02, labels,
  };
  if (config.dim % config.nHeads !== 0) fail(`metadata bert.embedding_length ${config.dim} is not a multiple of bert.attention.head_count ${config.nHeads}`);
  return { config, head };
}

/**
 * Check the file's tensors against the config before any data is read: each encoder tensor present with its
 * shape, head tensors of the right width, nothing the encoder would not use. Errors name the GGUF tensor.
 */
function checkTensors(file: GgufHeader, c: EncoderConfig, head: Map<string, string>): Map<string, string> {
  const fail = (p: string): never => { throw new FormatError(file.name, p); };
  const names = new Map<string, string>();
  for (const [hf, shape] of encoderTensorShapes(c)) {
    const g = bertHfToGguf(hf)!;
    const t = file.tensorsByName.get(g);
    if (!t) {
      const fused = /^blk\.\d+\.attn_[qkv]\./.test(g) && file.tensorsByName.has(g.replace(/attn_[qkv]\./, 'attn_qkv.')) ? ' (fused attn_qkv is not read for bert; the converter writes q, k and v apart)' : '';
      fail(`tensor ${g} (${hf}) is missing; a bert encoder of this config needs it, shape [${shape.join(', ')}]${fused}`);
    }
    if (t!.shape.join() !== shape.join()) fail(`tensor ${g} (${hf}) has shape [${t!.shape.join(', ')}], expected [${shape.join(', ')}] from the file's metadata`);
    names.set(g, hf);
  }
  for (const [g, hf] of head) {
    // The classifier's rows are its labels; the pooler's are the hidden size.
    const rows = hf === 'classifier' ? file.tensorsByName.get(`${g}.weight`)?.shape[0] ?? 0 : c.dim;
    for (const kind of ['weight', 'bias']) {
      const t = file.tensorsByName.get(`${g}.${kind}`) ?? fail(`tensor ${g}.${kind} is missing (the file has ${g}.${kind === 'weight' ? 'bias' : 'weight'})`);
      const want = kind === 'weight' ? [rows, c.dim] : [rows];
      if (t.shape.join() !== want.join()) fail(`tensor ${g}.${kind} (${hf}.${kind}) has shape [${t.shape.join(', ')}], expected [${want.join(', ')}]`);
      names.set(`${g}.${kind}`, `${hf}.${kind}`);
    }
  }
  for (const t of file.tensors) if (!names.has(t.name)) fail(`tensor ${t.name} is not part of a bert encoder`);
  return names;
}

/**
 * A bert GGUF file (in memory, or read a tensor at a time from a source) as an encoder checkpoint, every
 * tensor decoded to float32, with the tokenizer its metadata holds.
 */
export async function readGgufEncoder(input: GgufFile | ByteSource): Promise<EncoderCheckpoint> {
  const src = 'read' in input ? input : bytesSource(input.bytes, input.name);
  const file = 'read' in input ? await readGgufHeader(src) : input;
  const { config, head } = ggufEncoderConfig(file);
  const names = checkTensors(file, config, head);
  const tensors = new Map<string, NamedTensor>();
  for (const t of file.tensors) tensors.set(names.get(t.name)!, await readStoredTensor(src, ggufStoredTensor(t, file.name), 'f32', { copy: true }));
  const ckpt: EncoderCheckpoint = { config: adapterModelConfig(config), encoder: config, tensors, source: file.name };
  const tok = ggufTokenizerData(file);
  if (tok) {
    if (tok.tokens.length > config.vocabSize) throw new FormatError(file.name, `the tokenizer has ${tok.tokens.length} tokens but token_embd.weight has ${config.vocabSize} rows`);
    ckpt.tokenizer = tok;
  }
  return ckpt;
}
