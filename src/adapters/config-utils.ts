/** Helpers for validating method configs: unknown keys and wrong types are errors that name the key. */

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

/** Target modules: a list (comma-separated string from a CLI flag is split) or a regex given as `re:...`. */
export function targets(method: string, raw: Readonly<Record<string, unknown>>, fallback: string[]): string[] | string {
  const v = raw.targetModules ?? fallback;
  if (Array.isArray(v) && v.every((s) => typeof s === 'string') && v.length > 0) return v as string[];
  if (typeof v === 'string') return v.startsWith('re:') ? v.slice(3) : v.includes(',') || /^[\w.]+$/.test(v) ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
  throw new Error(`${method}: option 'targetModules' must be a list of module names or a regex (got ${JSON.stringify(v)})`);
}

export function layers(method: string, raw: Readonly<Record<string, unknown>>): number[] | undefined {
  const v = raw.layersToTransform;
  if (v === undefined || v === null) return undefined;
  const list = typeof v === 'string' ? v.split(',').map(Number) : typeof v === 'number' ? [v] : v;
  if (!Array.isArray(list) || !list.every((x) => Number.isInteger(x) && x >= 0)) throw new Error(`${method}: option 'layersToTransform' must be layer indices (got ${JSON.stringify(v)})`);
  return list as number[];
}
