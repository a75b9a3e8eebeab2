/**
 * A sparse-delta folder, laid out as SpIEL's reference PEFT fork saves an SFT adapter: `adapter_model.safetensors`
 * (the `…sft_delta.<adapter>.values|indices` tensors, delta.ts) beside an `adapter_config.json` whose
 * `peft_type` is "SFT". Any method whose result is a sparse delta (SpIEL, LT-SFT, grafting) saves through here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type SparseDelta, readSparseDelta, writeSparseDelta } from './delta.js';

export const DELTA_WEIGHTS = 'adapter_model.safetensors';
export const DELTA_CONFIG = 'adapter_config.json';

export interface DeltaFolderInfo {
  /** The method that trained it ('spiel', 'lt-sft', …). */
  method?: string;
  baseModel?: string;
  /** Active entries over all base parameters. */
  density?: number;
}

/** Whether `dir` holds a sparse delta (adapter_config.json with peft_type "SFT"). */
export function isDeltaFolder(dir: string): boolean {
  const cfg = join(dir, DELTA_CONFIG);
  if (!existsSync(cfg)) return false;
  try {
    return (JSON.parse(readFileSync(cfg, 'utf8')) as { peft_type?: string }).peft_type === 'SFT';
  } catch {
    return false;
  }
}

/** Write a delta folder: the safetensors file and the config (target modules = the tensors it changes). */
export async function saveDeltaFolder(dir: string, delta: SparseDelta, info: DeltaFolderInfo = {}, adapter = 'default'): Promise<string[]> {
  const names = [...delta.keys()].sort();
  const nnz = [...delta.values()].reduce((a, d) => a + d.indices.length, 0);
  const config = {
    peft_type: 'SFT',
    ...(info.baseModel ? { base_model_name_or_path: info.baseModel } : {}),
    ...(info.density !== undefined ? { density: info.density } : {}),
    num_tunable_weights: nnz,
    target_modules: names.map((n) => n.replace(/\.weight$/, '')),
    dtype: 'float32',
    adapter_name: adapter,
    ...(info.method ? { method: info.method } : {}),
  };
  await writeFile(join(dir, DELTA_WEIGHTS), writeSparseDelta(delta, adapter));
  await writeFile(join(dir, DELTA_CONFIG), `${JSON.stringify(config, null, 2)}\n`);
  return [DELTA_WEIGHTS, DELTA_CONFIG];
}

/** Read a delta folder back (the delta and its config). */
export async function loadDeltaFolder(dir: string): Promise<{ delta: SparseDelta; config: Record<string, unknown> }> {
  for (const f of [DELTA_CONFIG, DELTA_WEIGHTS]) if (!existsSync(join(dir, f))) throw new Error(`${dir}: not a sparse-delta folder (missing ${f})`);
  const config = JSON.parse(await readFile(join(dir, DELTA_CONFIG), 'utf8')) as Record<string, unknown>;
  if (config.peft_type !== 'SFT') throw new Error(`${dir}/${DELTA_CONFIG}: peft_type is ${String(config.peft_type)}, not SFT`);
  const delta = readSparseDelta(new Uint8Array(await readFile(join(dir, DELTA_WEIGHTS))), typeof config.adapter_name === 'string' ? config.adapter_name : undefined);
  return { delta, config };
}

export { applyDeltaToCheckpoint, checkDeltaFits } from './apply.js';
