/** Helpers for validating method configs: unknown keys and wrong types are errors that name the key. */
import { allLinearSuffixes } from '../model/families.js';
import type { TargetConfig } from './types.js';

export function checkKeys(method: string, raw: Readonly<Record<string, unknown>>, known: readonly string[]): void {
  for (const k of Object.keys(raw)) {
    if (raw[k] !== undefined && !known.includes(k)) throw new Error(`${method}: unknown option '${k}' (options: ${known.join(', ')})`);
  }
}

export function num(method: string, raw: Readonly<Record<string, unknown>>, key: string, fallback: number, check?: (v: number) => boolean, rule?: string): number {
  const v = raw[key] ?? fallback;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || (check && !check(n))) {
    throw new Error(`${method}: option '${key}' must be ${rule ?? 'a number'} (got ${JSON.stringify(v)})`);
  }
  return n;
}

export function bool(method: string, raw: Readonly<Record<string, unknown>>, key: string, fallback: boolean): boolean {
  const v = raw[key] ?? fallback;
  if (v === 'true' || v === 'false') return v === 'true';
  if (typeof v !== 'boolean') throw new Error(`${method}: option '${key}' must be true or false (got ${JSON.stringify(v)})`);
  return v;
}

export function oneOf<T extends string>(method: string, raw: Readonly<Record<string, unknown>>, key: string, fallback: T, allowed: readonly T[]): T {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'string' || !allowed.includes(v as T)) throw new Error(`${method}: option '${key}' must be one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`);
  return v as T;
}

/** Module names from an option: a list, a comma-separated string (a CLI flag), or a regex given as `re:...`. */
function moduleNames(method: string, key: string, v: unknown): string[] | string {
  if (Array.isArray(v) && v.every((s) => typeof s === 'string') && v.length > 0) return v as string[];
  if (typeof v === 'string') return v.startsWith('re:') ? v.slice(3) : v.includes(',') || /^[\w.]+$/.test(v) ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
  throw new Error(`${method}: option '${key}' must be a list of module names or a regex (got ${JSON.stringify(v)})`);
}

/** Target modules (see moduleNames). */
export function targets(method: string, raw: Readonly<Record<string, unknown>>, fallback: string[]): string[] | string {
  return moduleNames(method, 'targetModules', raw.targetModules ?? fallback);
}

/** Modules excluded from the targets (see moduleNames), or none. */
export function excludes(method: string, raw: Readonly<Record<string, unknown>>): { excludeModules?: string[] | string } {
  const v = raw.excludeModules;
  if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) return {};
  return { excludeModules: moduleNames(method, 'excludeModules', v) };
}

export function layers(method: string, raw: Readonly<Record<string, unknown>>): number[] | undefined {
  const v = raw.layersToTransform;
  if (v === undefined || v === null) return undefined;
  const list = typeof v === 'string' ? v.split(',').map(Number) : typeof v === 'number' ? [v] : v;
  if (!Array.isArray(list) || !list.every((x) => Number.isInteger(x) && x >= 0)) throw new Error(`${method}: option 'layersToTransform' must be layer indices (got ${JSON.stringify(v)})`);
  return list as number[];
}

/**
 * target_modules, layers_to_transform and exclude_modules as PEFT reads them. PEFT refuses a regex
 * target_modules together with layers_to_transform, so that pair is written as the selected modules' full
 * names (which PEFT matches exactly, whatever the layers).
 */
export function peftTargets(c: TargetConfig, modules?: readonly { name: string }[]): Record<string, unknown> {
  const names = modules && typeof c.targetModules === 'string' && c.layersToTransform;
  return {
    target_modules: names ? modules!.map((m) => m.name) : c.targetModules,
    layers_to_transform: names ? null : c.layersToTransform ?? null,
    exclude_modules: c.excludeModules ?? null,
  };
}

/** The TargetConfig fields of a PEFT adapter_config.json. */
export function fromPeftTargets(j: Readonly<Record<string, unknown>>, fallback: string[]): Record<string, unknown> {
  const lt = j.layers_to_transform;
  const lp = j.layers_pattern === undefined || j.layers_pattern === null ? [] : Array.isArray(j.layers_pattern) ? j.layers_pattern : [j.layers_pattern];
  // The layer list's name: `layers` (model.layers), GPT-2's `h` (transformer.h); layer indices come from the module.
  if (lp.some((p) => p !== '' && p !== 'layers' && p !== 'h')) throw new Error(`adapter_config.json: layers_pattern ${JSON.stringify(j.layers_pattern)} does not name a layer list of the supported models ("layers", GPT-2's "h")`);
  // A string is a regex over the full name in PEFT, even one without regex characters ('re:' keeps it one here);
  // 'all-linear' is PEFT's shorthand for every linear layer but the output layer.
  const asRegex = (v: unknown) => (v === 'all-linear' ? allLinearSuffixes() : typeof v === 'string' ? `re:${v}` : v);
  return {
    targetModules: asRegex(j.target_modules ?? fallback),
    ...(Array.isArray(lt) ? { layersToTransform: lt } : typeof lt === 'number' ? { layersToTransform: [lt] } : {}),
    ...(j.exclude_modules !== undefined && j.exclude_modules !== null ? { excludeModules: asRegex(j.exclude_modules) } : {}),
  };
}
