/**
 * Adapters in Hugging Face PEFT's folder format: `adapter_config.json` + `adapter_model.safetensors`
 * with keys `base_model.model.<module>.<param>`, in Hugging Face orientation. A GGUF-loaded Llama keeps
 * Q/K rows in rotary pair order, so output-row tensors of q_proj/k_proj adapters are permuted to
 * rotate-half order on save and back on load. Pure functions over bytes: they run in browsers too.
 */
import { type LlamaCheckpoint, type LlamaConfig, type NamedTensor, permuteQKHalfToPairs, permuteQKPairsToHalf } from '../formats/checkpoint.js';
import { parseSafetensors, safetensorsTensorToF32, writeSafetensors } from '../formats/safetensors.js';
import { headDim } from '../model/llama.js';
import { type Adapter, AdaptedModel } from './adapted-model.js';
import { methodByPeftType } from './registry.js';
import { selectTargets } from './targets.js';
import type { ModuleInfo, ParamStore } from './types.js';

const PREFIX = 'base_model.model.';

export interface PeftFiles {
  /** adapter_config.json text. */
  config: string;
  /** adapter_model.safetensors bytes. */
  weights: Uint8Array;
}

/** LoRA's tensors whose first axis is the module's output features (they follow Q/K row order). */
const LORA_OUTPUT_ROWS = /\.(lora_B\.weight|lora_magnitude_vector|lora_embedding_B)$/;

function qkHeads(module: string, base: LlamaCheckpoint): number | undefined {
  if (module.endsWith('.self_attn.q_proj')) return base.config.nHeads;
  if (module.endsWith('.self_attn.k_proj')) return base.config.nKvHeads;
  return undefined;
}

function reorient(a: Pick<Adapter, 'method' | 'config'>, params: ParamStore, modules: readonly ModuleInfo[], base: LlamaCheckpoint, toHf: boolean): ParamStore {
  if (base.config.ropeLayout === 'half') return params;
  if (a.method.reorient) return a.method.reorient(params, { model: base.config, config: a.config, toHf });
  const rows = a.method.outputRowKeys ?? LORA_OUTPUT_ROWS, columns = a.method.outputColumnKeys;
  const f = toHf ? permuteQKPairsToHalf : permuteQKHalfToPairs;
  const out: ParamStore = new Map();
  for (const [key, t] of params) {
    const module = modules.find((m) => key.startsWith(`${m.name}.`));
    const heads = module && qkHeads(module.name, base);
    const first = t.shape[0]!, last = t.shape[t.shape.length - 1]!;
    if (heads && rows.test(key) && first === module!.outFeatures) {
      out.set(key, { shape: t.shape, data: f(t.data, heads, headDim(base.config), t.data.length / first) });
    } else if (heads && columns?.test(key) && t.shape.length === 2 && last === module!.outFeatures) {
      out.set(key, { shape: t.shape, data: transpose2d(f(transpose2d(t.data, first, last), heads, headDim(base.config), first), last, first) });
    } else {
      out.set(key, t);
    }
  }
  return out;
}

/** [rows, cols] row-major → [cols, rows]. */
function transpose2d(d: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(d.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = d[i * cols + j]!;
  return out;
}

/** Serialise one adapter as a PEFT folder's two files. */
export function savePeft(model: AdaptedModel, name: string, o: { baseModel?: string } = {}): PeftFiles {
  const a = model.get(name);
  const saved = a.method.exportParams ? a.method.exportParams(a) : { params: a.params, config: a.config };
  const params = reorient({ method: a.method, config: saved.config }, saved.params, a.modules, model.base, true);
  const config = { ...a.method.toPeftConfig(saved.config, model.base.config), base_model_name_or_path: o.baseModel ?? null, revision: null };
  const prefix = a.method.fileKeyPrefix ?? PREFIX;
  const weights = writeSafetensors([...params].map(([k, t]) => [`${prefix}${k}`, { shape: t.shape, data: t.data }] as [string, { shape: number[]; data: Float32Array }]), {
    metadata: { format: 'pt' }, name: 'adapter_model.safetensors',
  });
  return { config: `${JSON.stringify(config, null, 2)}\n`, weights };
}

/** Read a PEFT folder's two files into a new adapter on `model`. */
export function loadPeft(model: AdaptedModel, name: string, files: PeftFiles, source = 'adapter'): Adapter {
  const at = `${source}/adapter_config.json`;
  let parsed: unknown;
  try { parsed = JSON.parse(files.config); } catch (e) {
    throw new Error(`${at}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${at}: is ${JSON.stringify(parsed)?.slice(0, 40)}, expected a JSON object`);
  const json = parsed as Record<string, unknown>;
  if (typeof json.peft_type !== 'string') throw new Error(`${at}: no peft_type`);
  checkPeftSizes(json, model.base.config, at);
  const method = methodByPeftType(json.peft_type);
  let config: ReturnType<typeof method.fromPeftConfig>, modules: ModuleInfo[], expected: ParamStore;
  try {
    config = method.fromPeftConfig(json);
    modules = method.selectModules ? method.selectModules(config, model.modules) : selectTargets(config, model.modules);
    // Fresh parameters tell which keys and shapes the file must have.
    expected = method.createParams({
      config, modules, model: model.base.config, random: () => 0.5, baseWeight: (m) => model.base.tensors.get(`${m}.weight`)!,
      ...(model.base.tokenizer ? { tokenizer: model.base.tokenizer } : {}),
    });
  } catch (e) {
    throw namedError(e, at);
  }
  for (const k of [...expected.keys()]) if (k.startsWith('__base__/')) expected.delete(k);
  const file = parseSafetensors(files.weights, `${source}/adapter_model.safetensors`);
  const read: ParamStore = new Map();
  for (const t of file.tensors) {
    const key = t.name.startsWith(PREFIX) ? t.name.slice(PREFIX.length) : t.name;
    const want = expected.get(key);
    if (!want) throw new Error(`${source}/adapter_model.safetensors: unexpected tensor ${t.name} for a ${method.name} adapter on this model`);
    if (want.shape.join() !== t.shape.join()) throw new Error(`${source}/adapter_model.safetensors: ${t.name} is [${t.shape.join(', ')}], expected [${want.shape.join(', ')}]`);
    read.set(key, { shape: [...t.shape], data: safetensorsTensorToF32(file, t) });
  }
  for (const k of expected.keys()) if (!read.has(k)) throw new Error(`${source}/adapter_model.safetensors: missing tensor ${method.fileKeyPrefix ?? PREFIX}${k}`);
  const params = reorient({ method, config }, read, modules, model.base, false);
  return model.attach({ name, method, config, modules, params, initial: params, baseOverrides: new Map(), enabled: true, merged: false });
}

/**
 * Sizes in adapter_config.json that set how much is allocated, checked against the model before anything
 * is: a rank above the model's largest dimension, or more virtual tokens than its context, is corrupt.
 */
export function checkPeftSizes(json: Readonly<Record<string, unknown>>, c: LlamaConfig, at: string): void {
  const largest = Math.max(c.dim, c.hiddenDim, c.vocabSize);
  const limits: [string, number, string][] = [
    ['r', largest, "the model's largest dimension"], ['init_r', largest, "the model's largest dimension"], ['target_r', largest, "the model's largest dimension"],
    ['num_virtual_tokens', c.maxSeqLen, "the model's context length"],
  ];
  for (const [k, max, what] of limits) {
    const v = json[k];
    if (v === undefined || v === null) continue;
    if (!(Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= max)) throw new Error(`${at}: ${k} is ${JSON.stringify(v)}, expected a whole number from 0 to ${max} (${what})`);
  }
}

/**
 * `e` as an Error whose message starts with `file` (the config's problems are found by code that does not
 * know it). Engine errors (TypeError, RangeError) are bugs, not bad input, and pass through unchanged.
 */
export function namedError(e: unknown, file: string): unknown {
  if (!(e instanceof Error) || e instanceof TypeError || e instanceof RangeError || e.message.startsWith(file)) return e;
  return new Error(`${file}: ${e.message}`);
}

export type { NamedTensor };
