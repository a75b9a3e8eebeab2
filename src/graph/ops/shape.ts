/** Shape helpers shared by the shape rules. */
import type { Attrs, Shape } from '../types.js';
import { shapeStr } from '../types.js';

/** Numpy-style broadcasting of two shapes; throws when they are incompatible. */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`shapes ${shapeStr(a)} and ${shapeStr(b)} do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Axes as non-negative indices, sorted and unique; an absent list means all axes. */
export function normalizeAxes(axes: unknown, rank: number): number[] {
  if (axes === undefined || axes === null) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : (axes as number[]);
  const out = new Set<number>();
  for (const a of list) {
    const ax = a < 0 ? a + rank : a;
    if (!Number.isInteger(ax) || ax < 0 || ax >= rank) throw new Error(`axis ${a} out of range for rank ${rank}`);
    out.add(ax);
  }
  return [...out].sort((x, y) => x - y);
}

export function normalizeAxis(axis: unknown, rank: number): number {
  return normalizeAxes(axis ?? 0, rank)[0]!;
}

export function numAttr(attrs: Attrs, key: string, fallback?: number): number {
  const v = attrs[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`attribute ${key} must be a finite number (got ${JSON.stringify(v)})`);
  return v;
}

export function boolAttr(attrs: Attrs, key: string): boolean {
  const v = attrs[key];
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new Error(`attribute ${key} must be a boolean (got ${JSON.stringify(v)})`);
  return v;
}

export function shapeAttr(attrs: Attrs, key: string): number[] {
  const v = attrs[key];
  if (!Array.isArray(v) || !v.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0)) {
    throw new Error(`attribute ${key} must be a list of non-negative integers (got ${JSON.stringify(v)})`);
  }
  return v as number[];
}

export function expectInputs(inputs: readonly unknown[], n: number | [number, number]): void {
  const [lo, hi] = typeof n === 'number' ? [n, n] : n;
  if (inputs.length < lo || inputs.length > hi) throw new Error(`expects ${lo === hi ? lo : `${lo} to ${hi}`} inputs, got ${inputs.length}`);
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
