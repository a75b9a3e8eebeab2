/**
 * Checkpoints that resume: everything a fine-tuning run needs to continue exactly where it stopped, in one
 * safetensors file (`training_state.safetensors` in a checkpoint folder):
 *   param/<key>        the adapter's parameters as they train (all ranks, this library's orientation),
 *   optim/<name>       AdamW's moments (Trainer.exportState),
 *   controller/<name>  the method's controller state in F64 (AdaLoRA's importance averages, LaMDA's kept
 *                      columns, TriAdaptLoRA's growth blocks),
 * with the method, its config (as PEFT JSON), the seed and the step in the metadata. The PEFT folder saved
 * beside it is for using the adapter: it may be cut to the kept ranks (AdaLoRA, TriAdaptLoRA) or
 * re-expressed (PiSSA as a plain LoRA), so it cannot carry training on by itself.
 */
import type { Adapter, AdaptedModel } from '../adapters/adapted-model.js';
import { checkPeftSizes, namedError } from '../adapters/peft.js';
import { getMethod } from '../adapters/registry.js';
import { parseSafetensors, safetensorsTensorToF32, safetensorsTensorToF64, writeSafetensors, type SafetensorsWriteTensor } from '../formats/safetensors.js';

export const TRAINING_STATE_FILE = 'training_state.safetensors';
const FORMAT = 'adaptkit-training-state';

export interface TrainingState {
  /** Optimizer steps taken. */
  readonly step: number;
  /** AdamW moments by `<param>.adam_m` / `<param>.adam_v`. */
  readonly optimizer: ReadonlyMap<string, Float32Array>;
  /** The adapter method's controller state (empty for methods without one). */
  readonly controller: ReadonlyMap<string, Float64Array>;
}

/** Serialise an adapter's training state; `seed` is the one the adapter was created with. */
export function encodeTrainingState(model: AdaptedModel, adapterName: string, seed: number, state: TrainingState): Uint8Array {
  const a = model.get(adapterName);
  const tensors: [string, SafetensorsWriteTensor][] = [];
  for (const [k, t] of a.params) tensors.push([`param/${k}`, { shape: t.shape, data: t.data }]);
  for (const [k, d] of state.optimizer) tensors.push([`optim/${k}`, { shape: [d.length], data: d }]);
  for (const [k, d] of state.controller) tensors.push([`controller/${k}`, { shape: [d.length], data: d }]);
  return writeSafetensors(tensors, {
    name: TRAINING_STATE_FILE,
    metadata: {
      format: FORMAT, version: '1', method: a.method.name, step: String(state.step), seed: String(seed),
      config: JSON.stringify(a.method.toPeftConfig(a.config, model.base.config)),
    },
  });
}

/**
 * Recreate the adapter of a training state on `model` (same method, config and seed, then the saved
 * values) and return the optimizer and controller state to resume with. `source` names the file in errors.
 */
export function decodeTrainingState(model: AdaptedModel, adapterName: string, bytes: Uint8Array, source = TRAINING_STATE_FILE): TrainingState & { adapter: Adapter; seed: number } {
  const file = parseSafetensors(bytes, source);
  const meta = file.metadata ?? {};
  if (meta.format !== FORMAT) throw new Error(`${source}: not a training state (metadata format ${JSON.stringify(meta.format ?? null)}, expected ${FORMAT})`);
  if (meta.version !== '1') throw new Error(`${source}: training state version ${meta.version} is not supported (this version reads 1)`);
  const step = Number(meta.step), seed = Number(meta.seed);
  if (!Number.isInteger(step) || step < 0 || !Number.isInteger(seed)) throw new Error(`${source}: bad step or seed in the metadata`);
  let json: unknown;
  try { json = JSON.parse(meta.config ?? ''); } catch (e) {
    throw new Error(`${source}: the metadata's config is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${source}: the metadata's config is not a JSON object`);
  let adapter: Adapter, pattern: unknown;
  try {
    const method = getMethod(meta.method ?? '');
    checkPeftSizes(json as Record<string, unknown>, model.base.config, `${source} (metadata config)`);
    // A config with a rank pattern (AdaLoRA, TriAdaptLoRA once ranks are allocated) sizes the parameters
    // to the kept ranks, as in a saved PEFT adapter. Training keeps all ranks: the adapter is created
    // without the pattern, which the config then gets back for the controller.
    const config = method.fromPeftConfig(json as Record<string, unknown>) as ReturnType<typeof method.fromPeftConfig> & { rankPattern?: unknown };
    pattern = config.rankPattern;
    delete config.rankPattern;
    adapter = model.addParsedAdapter(adapterName, method, config, { seed });
  } catch (e) {
    throw namedError(e, source);
  }
  if (pattern !== undefined) (adapter.config as { rankPattern?: unknown }).rankPattern = pattern;
  try {
    return { adapter, seed, step, ...readTensors(file, adapter, source) };
  } catch (e) {
    // Leave the model as it was.
    model.adapters.delete(adapterName);
    throw e;
  }
}

function readTensors(file: ReturnType<typeof parseSafetensors>, adapter: Adapter, source: string): Pick<TrainingState, 'optimizer' | 'controller'> {
  const seen = new Set<string>();
  const optimizer = new Map<string, Float32Array>(), controller = new Map<string, Float64Array>();
  for (const t of file.tensors) {
    const slash = t.name.indexOf('/');
    const kind = t.name.slice(0, slash), key = t.name.slice(slash + 1);
    if (kind === 'param') {
      const p = adapter.params.get(key);
      if (!p) throw new Error(`${source}: parameter ${key} does not belong to a ${adapter.method.name} adapter with this config on this model`);
      if (p.shape.join() !== t.shape.join()) throw new Error(`${source}: parameter ${key} is [${t.shape.join(', ')}], the adapter has [${p.shape.join(', ')}]`);
      p.data.set(safetensorsTensorToF32(file, t));
      seen.add(key);
    } else if (kind === 'optim') {
      optimizer.set(key, safetensorsTensorToF32(file, t, { copy: true }));
    } else if (kind === 'controller') {
      controller.set(key, safetensorsTensorToF64(file, t));
    } else {
      throw new Error(`${source}: unexpected tensor ${t.name}`);
    }
  }
  for (const k of adapter.params.keys()) if (!seen.has(k)) throw new Error(`${source}: missing parameter ${k}`);
  return { optimizer, controller };
}
