// LT-SFT (Ansell et al., 2022, "Composable Sparse Fine-Tuning for Cross-Lingual Transfer"): after a full
// fine-tune θ₁ from θ₀, keep the K entries with the largest |θ₁ − θ₀| over all tensors together.
import type { SparseDelta } from '../sparse/delta.js';

/** The global top-K |tuned − base| entries as a sparse delta (ties broken by tensor order, then index). */
export function topKDelta(base: ReadonlyMap<string, Float32Array>, tuned: ReadonlyMap<string, Float32Array>, k: number): SparseDelta {
  if (!(Number.isInteger(k) && k >= 0)) throw new Error(`K must be a non-negative integer, got ${k}`);
  const all: [string, number, number][] = [];
  for (const [name, t] of tuned) {
    const b = base.get(name);
    if (!b || b.length !== t.length) throw new Error(`tensor ${name}: base lacks it or its size differs`);
    for (let i = 0; i < t.length; i++) all.push([name, i, t[i] - b[i]]);
  }
  if (k > all.length) throw new Error(`K = ${k} exceeds the ${all.length} trainable entries`);
  const keep = all.map((_, i) => i).sort((a, b) => Math.abs(all[b][2]) - Math.abs(all[a][2]) || a - b).slice(0, k);
  const per = new Map<string, [number, number][]>();
  for (const i of keep) { const [n, idx, v] = all[i]; if (!per.has(n)) per.set(n, []); per.get(n)!.push([idx, v]); }
  const out: SparseDelta = new Map();
  for (const [n, rows] of per) {
    rows.sort((a, b) => a[0] - b[0]);
    out.set(n, { indices: Int32Array.from(rows, (r) => r[0]), values: Float32Array.from(rows, (r) => r[1]) });
  }
  return out;
}

/** L1 pull toward the base, λ·Σ|θ − θ₀|, and its subgradient added into `grad` (logged beside the task loss). */
export function l1TowardBase(param: Float32Array, base: Float32Array, grad: Float32Array, lambda: number): number {
  let s = 0;
  for (let i = 0; i < param.length; i++) {
    const d = param[i] - base[i];
    s += Math.abs(d);
    grad[i] += lambda * Math.sign(d);
  }
  return lambda * s;
}
