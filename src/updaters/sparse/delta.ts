// Sparse deltas: per base tensor, the changed entries as f32 values at sorted int32 flat indices.
// Stored in safetensors with the key layout of SpIEL's reference PEFT fork:
//   `<module>.sft_delta.<adapter>.values` (F32) and `<module>.sft_delta.<adapter>.indices` (I32),
// where <module> is the Hugging Face tensor name without its trailing `.weight`.
import { parseSafetensors } from '../../formats/safetensors.js';

export interface SparseTensorDelta {
  /** Strictly increasing flat indices into the base tensor. */
  indices: Int32Array;
  values: Float32Array;
}
/** Base tensor name (e.g. 'model.layers.0.mlp.up_proj.weight') → its sparse delta. */
export type SparseDelta = Map<string, SparseTensorDelta>;

function moduleOf(name: string): string {
  return name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : name;
}

function checkDelta(name: string, d: SparseTensorDelta, size?: number): void {
  if (d.indices.length !== d.values.length) throw new Error(`sparse delta ${name}: ${d.indices.length} indices but ${d.values.length} values`);
  for (let i = 0; i < d.indices.length; i++) {
    const k = d.indices[i];
    if (k < 0 || (size !== undefined && k >= size)) throw new Error(`sparse delta ${name}: index ${k} outside the tensor (size ${size})`);
    if (i > 0 && k <= d.indices[i - 1]) throw new Error(`sparse delta ${name}: indices are not strictly increasing at position ${i}`);
  }
}

/** Serialise a delta as one safetensors file (keys in name order; header padded to 8 bytes). */
export function writeSparseDelta(delta: SparseDelta, adapter = 'default'): Uint8Array {
  const entries: [string, 'F32' | 'I32', Uint8Array][] = [];
  for (const [name, d] of delta) {
    checkDelta(name, d);
    const key = `${moduleOf(name)}.sft_delta.${adapter}`;
    entries.push([`${key}.indices`, 'I32', new Uint8Array(d.indices.buffer.slice(d.indices.byteOffset, d.indices.byteOffset + d.indices.byteLength))]);
    entries.push([`${key}.values`, 'F32', new Uint8Array(d.values.buffer.slice(d.values.byteOffset, d.values.byteOffset + d.values.byteLength))]);
  }
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', adapter } };
  let off = 0;
  for (const [k, dtype, b] of entries) {
    header[k] = { dtype, shape: [b.length / 4], data_offsets: [off, off + b.length] };
    off += b.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const p = new Uint8Array(padded).fill(0x20);
  p.set(json);
  json = p;
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let o = 8 + json.length;
  for (const [, , b] of entries) { out.set(b, o); o += b.length; }
  return out;
}

/** Parse a delta file; `adapter` picks one adapter when several are stored (default: the only one). */
export function readSparseDelta(bytes: Uint8Array, adapter?: string): SparseDelta {
  const file = parseSafetensors(bytes, 'sparse delta');
  const out: SparseDelta = new Map();
  const re = /^(.*)\.sft_delta\.([^.]+)\.(values|indices)$/;
  const found = new Set<string>();
  for (const t of file.tensors) {
    const m = re.exec(t.name);
    if (!m) throw new Error(`sparse delta: unexpected key ${t.name} (expected <module>.sft_delta.<adapter>.values|indices)`);
    found.add(m[2]);
  }
  if (adapter === undefined) {
    if (found.size > 1) throw new Error(`sparse delta holds adapters ${[...found].join(', ')}: name one`);
    adapter = [...found][0] ?? 'default';
  } else if (found.size && !found.has(adapter)) throw new Error(`sparse delta has no adapter ${adapter} (has ${[...found].join(', ')})`);
  for (const t of file.tensors) {
    const m = re.exec(t.name)!;
    if (m[2] !== adapter || m[3] !== 'values') continue;
    const it = file.tensorsByName.get(`${m[1]}.sft_delta.${adapter}.indices`);
    if (!it) throw new Error(`sparse delta: ${t.name} has no matching indices`);
    if (t.dtype !== 'F32' || it.dtype !== 'I32') throw new Error(`sparse delta ${m[1]}: expected F32 values and I32 indices, got ${t.dtype}/${it.dtype}`);
    const values = new Float32Array(bytes.slice(t.offset, t.offset + t.byteLength).buffer);
    const indices = new Int32Array(bytes.slice(it.offset, it.offset + it.byteLength).buffer);
    const d = { indices, values };
    checkDelta(m[1], d);
    // A file saved through PEFT's save_pretrained names modules under the wrapper ('base_model.model.').
    out.set(`${m[1].replace(/^base_model\.model\./, '')}.weight`, d);
  }
  return out;
}

/** Add deltas: the union of indices per tensor, values at shared indices summed. */
export function composeSparseDeltas(deltas: readonly SparseDelta[]): SparseDelta {
  const names = new Set<string>();
  for (const d of deltas) for (const n of d.keys()) names.add(n);
  const out: SparseDelta = new Map();
  for (const name of [...names].sort()) {
    const acc = new Map<number, number>();
    for (const d of deltas) {
      const t = d.get(name);
      if (!t) continue;
      for (let i = 0; i < t.indices.length; i++) acc.set(t.indices[i], Math.fround((acc.get(t.indices[i]) ?? 0) + t.values[i]));
    }
    const idx = [...acc.keys()].sort((a, b) => a - b);
    out.set(name, { indices: Int32Array.from(idx), values: Float32Array.from(idx, (k) => acc.get(k)!) });
  }
  return out;
}

/** Apply a delta to base tensors (name → f32 values), returning new arrays; base arrays are not modified. */
export function applySparseDelta(base: ReadonlyMap<string, Float32Array>, delta: SparseDelta): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, d] of delta) {
    const b = base.get(name);
    if (!b) throw new Error(`sparse delta names ${name}, which the base model does not have`);
    checkDelta(name, d, b.length);
  }
  for (const [name, b] of base) {
    const d = delta.get(name);
    if (!d) { out.set(name, b); continue; }
    const t = Float32Array.from(b);
    for (let i = 0; i < d.indices.length; i++) t[d.indices[i]] += d.values[i];
    out.set(name, t);
  }
  return out;
}

/** The delta between a tuned and base tensor set: entries that differ (or the given entries only). */
export function diffSparseDelta(base: ReadonlyMap<string, Float32Array>, tuned: ReadonlyMap<string, Float32Array>): SparseDelta {
  const out: SparseDelta = new Map();
  for (const [name, t] of tuned) {
    const b = base.get(name);
    if (!b || b.length !== t.length) throw new Error(`tensor ${name}: base and tuned shapes differ or base lacks it`);
    const idx: number[] = [];
    for (let i = 0; i < t.length; i++) if (t[i] !== b[i]) idx.push(i);
    if (idx.length) out.set(name, { indices: Int32Array.from(idx), values: Float32Array.from(idx, (k) => t[k] - b[k]) });
  }
  return out;
}
