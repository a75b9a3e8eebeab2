/**
 * Adapters in Hugging Face PEFT's folder format: `adapter_config.json` + `adapter_model.safetensors`
 * with keys `base_model.model.<module>.<param>`, in Hugging Face orientation. A GGUF-loaded Llama keeps
 * Q/K rows in rotary pair order, so output-row tensors of q_proj/k_proj adapters are permuted to
 * rotate-half order on save and back on load. Pure functions over bytes: they run in browsers too.
 *
 * Besides the method's tensors a folder may carry what PEFT saves with any method: whole replaced modules
 * (`modules_to_save`: `<module>.<param>`), replaced embedding rows (`trainable_token_indices`:
 * `<module>.token_adapter.trainable_tokens_delta`) and the base weight of an adapted embedding
 * (`<module>.base_layer.weight`). They load as base tensors the adapter replaces, and are saved back.
 */
import { familyOf } from '../model/families.js';
import { type LlamaCheckpoint, type LlamaConfig, type NamedTensor, permuteQKHalfToPairs, permuteQKPairsToHalf, tensorF32 } from '../formats/checkpoint.js';
import { parseSafetensors, safetensorsTensorToF32, writeSafetensors } from '../formats/safetensors.js';
import { headDim } from '../model/llama.js';
import { type Adapter, AdaptedModel } from './adapted-model.js';
import { methodByPeftType } from './registry.js';
import { modelModules, selectTargets } from './targets.js';
import type { ModuleInfo, ParamStore, PeftExtras } from './types.js';

const PREFIX = 'base_model.model.';

export interface PeftFiles {
  /** adapter_config.json text. */
  config: string;
  /** adapter_model.safetensors bytes. */
  weights: Uint8Array;
}

/** LoRA's tensors whose first axis is the module's output features (they follow Q/K row order). */
// Stryker disable next-line Regex: LoRA's keys end with these names (loadPeft accepts no others), so the `$` anchor changes no match
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
    // Stryker disable next-line ConditionalExpression,LogicalOperator: guards; every method's output-row tensors have the output size first, its output-column tensors are 2-D with the output size last
    const rowsFit = first === module?.outFeatures, columnsFit = t.shape.length === 2 && last === module?.outFeatures;
    if (heads && rows.test(key) && rowsFit) {
      out.set(key, { shape: t.shape, data: f(t.data, heads, headDim(base.config), t.data.length / first) });
    } else if (heads && columns?.test(key) && columnsFit) {
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
  // Stryker disable next-line EqualityOperator: `j <= cols` only adds writes past the end of the typed array, which are ignored
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = d[i * cols + j]!;
  return out;
}

/**
 * The Hugging Face model id a model argument names (`owner/repo`, `hf:owner/repo`, `owner/repo/file.gguf`,
 * a huggingface.co URL), or null for anything else: a local file or folder, which PEFT could not find on
 * another machine. `localSource` is where the model was actually read from; an argument equal to it was a
 * local path, whatever it looks like.
 */
export function huggingFaceModelId(spec: string | undefined, localSource?: string): string | null {
  if (!spec || spec === localSource) return null;
  const url = /^https:\/\/huggingface\.co\/([\w.-]+)\/([\w.-]+)(?:\/|$)/.exec(spec);
  if (url) return ['datasets', 'spaces'].includes(url[1]!) ? null : `${url[1]}/${url[2]}`;
  const id = spec.replace(/^hf:/, '');
  if (/^[a-z][\w+.-]*:/i.test(id) || /^[.~/\\]/.test(id)) return null;
  const parts = id.split('/');
  if (parts.length < 2 || !parts.every((p) => /^[\w.-]+$/.test(p)) || /\.(gguf|bin|safetensors|json)$/i.test(parts[1]!)) return null;
  return `${parts[0]}/${parts[1]}`;
}

/** Safetensors metadata key keeping the model argument an adapter was trained from (PEFT ignores metadata). */
export const BASE_MODEL_METADATA = 'adaptkit.base_model';

/** A base tensor in Hugging Face orientation (toHf) or back: Q/K projection rows follow the rotary layout. */
function orientBaseTensor(name: string, t: NamedTensor, base: LlamaCheckpoint, toHf: boolean): NamedTensor {
  // GPT-2's Conv1D weights: [in, out] in Hugging Face files, [out, in] here.
  const family = familyOf(base.config), flip = toHf ? family.toHf : family.fromHf;
  if (flip) return flip(name, t);
  const heads = base.config.ropeLayout === 'half' ? undefined : qkHeads(name.slice(0, name.lastIndexOf('.')), base);
  if (!heads) return t;
  const rows = t.shape[0]!, data = tensorF32(t);
  return { shape: t.shape, data: (toHf ? permuteQKPairsToHalf : permuteQKHalfToPairs)(data, heads, headDim(base.config), data.length / rows) };
}

/** Serialise one adapter as a PEFT folder's two files. `baseModel`: the model argument it was trained from. */
export function savePeft(model: AdaptedModel, name: string, o: { baseModel?: string } = {}): PeftFiles {
  const a = model.get(name);
  const saved = a.method.exportParams ? a.method.exportParams(a) : { params: a.params, config: a.config };
  const params = reorient({ method: a.method, config: saved.config }, saved.params, a.modules, model.base, true);
  const hfId = huggingFaceModelId(o.baseModel, model.base.source);
  const config: Record<string, unknown> = { ...a.method.toPeftConfig(saved.config, model.base.config, a.modules), base_model_name_or_path: hfId, revision: null };
  // Conv1D layers (GPT-2): PEFT marks adapters on them fan_in_fan_out (their factors are the same either way).
  if ('fan_in_fan_out' in config && familyOf(model.base.config).fanInFanOut) config.fan_in_fan_out = true;
  // PromptTuningConfig refuses a TEXT init without the tokenizer to rebuild it from (and would fetch that
  // tokenizer to build a starting prompt the saved one then replaces): name the model's when it has an id,
  // else write the RANDOM init, which loads the same saved prompt.
  if (config.prompt_tuning_init === 'TEXT') {
    if (hfId) config.tokenizer_name_or_path = hfId;
    else Object.assign(config, { prompt_tuning_init: 'RANDOM', prompt_tuning_init_text: null });
  }
  const prefix = a.method.fileKeyPrefix ?? PREFIX;
  const tensors: [string, NamedTensor][] = [...params].map(([k, t]) => [`${prefix}${k}`, t]);
  const x = a.peftExtras;
  if (x) {
    const override = (t: string) => a.baseOverrides.get(t)!;
    for (const m of x.savedModules) {
      for (const t of a.baseOverrides.keys()) if (t.startsWith(`${m}.`)) tensors.push([`${PREFIX}${t}`, orientBaseTensor(t, override(t), model.base, true)]);
    }
    for (const [m, rows] of x.tokenRows) {
      const w = override(`${m}.weight`), d = w.shape[1]!, table = tensorF32(w), delta = new Float32Array(rows.length * d);
      rows.forEach((row, i) => delta.set(table.subarray(row * d, row * d + d), i * d));
      tensors.push([`${PREFIX}${m}.token_adapter.trainable_tokens_delta`, { shape: [rows.length, d], data: delta }]);
    }
    for (const m of x.baseLayers) tensors.push([`${PREFIX}${m}.base_layer.weight`, orientBaseTensor(`${m}.weight`, override(`${m}.weight`), model.base, true)]);
    config.modules_to_save = x.modulesToSave.length ? [...x.modulesToSave] : null;
    // Left out of the JSON when undefined.
    config.trainable_token_indices = x.trainableTokenIndices;
  }
  // Our provenance (a local path, a URL) goes in the metadata: PEFT's config classes take no unknown keys
  // (0.20 drops them with a warning, older versions raise).
  const weights = writeSafetensors(tensors.map(([k, t]) => [k, { shape: t.shape, data: tensorF32(t) }] as [string, { shape: number[]; data: Float32Array }]), {
    // Stryker disable next-line StringLiteral: the name only labels writeSafetensors' errors (a tensor named __metadata__), which prefixed PEFT keys never raise
    metadata: { format: 'pt', ...(o.baseModel ? { [BASE_MODEL_METADATA]: o.baseModel } : {}) }, name: 'adapter_model.safetensors',
  });
  return { config: `${JSON.stringify(config, null, 2)}\n`, weights };
}

/** Module names as PyTorch's named_modules() lists them for this model: every prefix of a tensor name. */
function moduleNames(base: LlamaCheckpoint): string[] {
  const out = new Set<string>();
  for (const t of base.tensors.keys()) {
    const parts = t.split('.');
    for (let i = 1; i < parts.length; i++) out.add(parts.slice(0, i).join('.'));
  }
  // A tied output layer is still a module of its own in transformers.
  if (base.config.tiedEmbeddings) out.add('lm_head');
  return [...out];
}

/** A base tensor by name; a tied model's lm_head.weight is its embedding. */
function baseTensor(base: LlamaCheckpoint, name: string): NamedTensor | undefined {
  return base.tensors.get(name) ?? (name === 'lm_head.weight' && base.config.tiedEmbeddings ? base.tensors.get(`${modelModules(base.config)[0]!.name}.weight`) : undefined);
}

/** modules_to_save and trainable_token_indices of a config, resolved on this model (PEFT's rules, utils/other.py). */
function peftExtrasOf(json: Readonly<Record<string, unknown>>, base: LlamaCheckpoint, where: string): { mts: string[]; saved: string[]; tti?: number[] | Record<string, number[]>; tokenRows: Map<string, number[]> } {
  const mtsRaw = json.modules_to_save ?? [];
  if (!Array.isArray(mtsRaw) || !mtsRaw.every((m) => typeof m === 'string' && m !== '')) throw new Error(`${where}: modules_to_save must be a list of module names (got ${JSON.stringify(mtsRaw)})`);
  const mts = mtsRaw as string[];
  const names = moduleNames(base);
  // _set_trainable: a module is saved whole when its name ends with an entry; a module inside one already saved goes with it.
  const matched = names.filter((k) => mts.some((m) => k.endsWith(m)));
  const saved = matched.filter((k) => !matched.some((p) => k.startsWith(`${p}.`)));
  for (const m of mts) if (!names.some((k) => k.endsWith(m))) throw new Error(`${where}: modules_to_save entry ${JSON.stringify(m)} matches no module of this model`);
  const tokenRows = new Map<string, number[]>();
  const raw = json.trainable_token_indices;
  if (raw === undefined || raw === null) return { mts, saved, tokenRows };
  const byModule: Record<string, unknown> = Array.isArray(raw) ? { embed_tokens: raw } : typeof raw === 'object' ? raw as Record<string, unknown> : { '': raw };
  for (const [m, list] of Object.entries(byModule)) {
    const module = names.find((k) => k === m) ?? names.find((k) => m !== '' && k.endsWith(m) && baseTensor(base, `${k}.weight`)?.shape.length === 2);
    const w = module && baseTensor(base, `${module}.weight`);
    if (!module || !w || w.shape.length !== 2) throw new Error(`${where}: trainable_token_indices ${m ? `key ${JSON.stringify(m)} matches no embedding of this model` : 'must be a list of token ids or {module: [ids]}'}`);
    const rows = w.shape[0]!;
    if (!Array.isArray(list) || !list.every((i) => Number.isInteger(i) && i >= 0 && i < rows)) throw new Error(`${where}: trainable_token_indices for ${m} must be token ids in [0, ${rows}) (got ${JSON.stringify(list)})`);
    if (new Set(list).size !== list.length) throw new Error(`${where}: trainable_token_indices for ${m} lists a token twice`);
    tokenRows.set(module, list as number[]);
  }
  return { mts, saved, tti: raw as number[] | Record<string, number[]>, tokenRows };
}

/** Read a PEFT folder's two files into a new adapter on `model`. */
export function loadPeft(model: AdaptedModel, name: string, files: PeftFiles, source = 'adapter'): Adapter {
  const where = `${source}/adapter_config.json`;
  let parsed: unknown;
  try { parsed = JSON.parse(files.config); } catch (e) {
    throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${where}: is ${JSON.stringify(parsed)?.slice(0, 40)}, expected a JSON object`);
  // On Conv1D families (GPT-2) the model holds the weights [out, in] and orients them itself: fan_in_fan_out
  // (which PEFT sets for such layers whatever the file says) changes nothing about the adapter's tensors.
  const json = familyOf(model.base.config).fanInFanOut ? { ...(parsed as Record<string, unknown>), fan_in_fan_out: false } : parsed as Record<string, unknown>;
  if (typeof json.peft_type !== 'string') throw new Error(`${where}: no peft_type`);
  checkPeftSizes(json, model.base.config, where);
  const method = methodByPeftType(json.peft_type);
  // PEFT's own rule (tuners/lora/config.py): "`layers_to_transform` cannot be used when `target_modules` is a str."
  if (typeof json.target_modules === 'string' && json.layers_to_transform !== undefined && json.layers_to_transform !== null) {
    throw new Error(`${where}: layers_to_transform cannot be used with a regex target_modules (PEFT refuses this config)`);
  }
  method.checkPeftImport?.(json);
  let config: ReturnType<typeof method.fromPeftConfig>, modules: ModuleInfo[], expected: ParamStore, extras: ReturnType<typeof peftExtrasOf>;
  try {
    config = method.fromPeftConfig(json);
    extras = peftExtrasOf(json, model.base, where);
    if (method.fileKeyPrefix === '' && (extras.mts.length || extras.tokenRows.size)) throw new Error(`${where}: modules_to_save and trainable_token_indices are not supported with ${method.name}`);
    // check_target_module_exists: no adapter on a module that modules_to_save replaces, or inside one.
    const owned = extras.mts.map((m) => new RegExp(`^(?:.*\\.)?${m}(?:\\..*)?$`));
    const candidates = model.modules.filter((m) => !owned.some((re) => re.test(m.name)));
    modules = method.selectModules ? method.selectModules(config, candidates) : selectTargets(config, candidates);
    // Fresh parameters tell which keys and shapes the file must have.
    expected = method.createParams({
      config, modules, model: model.base.config, baseWeight: (m) => model.base.tensors.get(`${m}.weight`)!,
      // Stryker disable next-line ArrowFunction: only the keys and shapes of these parameters are used, never their random values
      random: () => 0.5,
      ...(model.base.tokenizer ? { tokenizer: model.base.tokenizer } : {}),
    });
  } catch (e) {
    throw namedError(e, where);
  }
  // The other tensors a folder may hold: file key (without the prefix) → the base tensor it replaces.
  const extra = new Map<string, { tensor: string; shape: readonly number[]; rows?: number[]; optional?: boolean }>();
  for (const m of extras.saved) {
    // A tied model's lm_head.weight is its embedding (baseTensor); for an untied model it is listed twice, to the same entry.
    for (const t of [...model.base.tensors.keys(), 'lm_head.weight']) {
      if (t.startsWith(`${m}.`)) extra.set(t, { tensor: t, shape: baseTensor(model.base, t)!.shape });
    }
  }
  for (const [m, rows] of extras.tokenRows) extra.set(`${m}.token_adapter.trainable_tokens_delta`, { tensor: `${m}.weight`, shape: [rows.length, baseTensor(model.base, `${m}.weight`)!.shape[1]!], rows });
  // Block-level modules (bottleneck adapters, Compacter) have no weight of their own.
  for (const m of modules) {
    const w = model.base.tensors.get(`${m.name}.weight`);
    if (w) extra.set(`${m.name}.base_layer.weight`, { tensor: `${m.name}.weight`, shape: w.shape, optional: true });
  }
  const file = parseSafetensors(files.weights, `${source}/adapter_model.safetensors`);
  const read: ParamStore = new Map();
  const baseOverrides = new Map<string, NamedTensor>(), baseLayers: string[] = [];
  for (const t of file.tensors) {
    const key = t.name.startsWith(PREFIX) ? t.name.slice(PREFIX.length) : t.name;
    const want = expected.get(key)?.shape ?? extra.get(key)?.shape;
    if (!want) throw new Error(`${source}/adapter_model.safetensors: unexpected tensor ${t.name} for a ${method.name} adapter on this model`);
    if (want.join() !== t.shape.join()) throw new Error(`${source}/adapter_model.safetensors: ${t.name} is [${t.shape.join(', ')}], expected [${want.join(', ')}]`);
    const data = safetensorsTensorToF32(file, t);
    const x = extra.get(key);
    if (!x) { read.set(key, { shape: [...t.shape], data }); continue; }
    const baseShape = baseTensor(model.base, x.tensor)!.shape;
    if (x.rows) {
      const w = Float32Array.from(tensorF32(baseOverrides.get(x.tensor) ?? baseTensor(model.base, x.tensor)!)), d = baseShape[1]!;
      x.rows.forEach((row, i) => w.set(data.subarray(i * d, i * d + d), row * d));
      baseOverrides.set(x.tensor, { shape: [...baseShape], data: w });
    } else {
      if (x.optional) baseLayers.push(key.slice(0, -'.base_layer.weight'.length));
      baseOverrides.set(x.tensor, orientBaseTensor(x.tensor, { shape: [...baseShape], data }, model.base, false));
    }
  }
  for (const k of expected.keys()) if (!read.has(k)) throw new Error(`${source}/adapter_model.safetensors: missing tensor ${method.fileKeyPrefix ?? PREFIX}${k}`);
  for (const [k, x] of extra) if (!x.optional && !file.tensors.some((t) => t.name === `${PREFIX}${k}`)) throw new Error(`${source}/adapter_model.safetensors: missing tensor ${PREFIX}${k} (${x.rows ? 'trainable_token_indices' : 'modules_to_save'})`);
  const params = reorient({ method, config }, read, modules, model.base, false);
  const peftExtras: PeftExtras = { modulesToSave: extras.mts, savedModules: extras.saved, trainableTokenIndices: extras.tti, tokenRows: extras.tokenRows, baseLayers };
  return model.attach({ name, method, config, modules, params, initial: params, baseOverrides, peftExtras, enabled: true, merged: false });
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
