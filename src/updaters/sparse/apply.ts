/** A sparse delta against a model: checked to fit, and added (browser-safe: no file access). */
import { type LlamaCheckpoint, type NamedTensor, tensorF32 } from '../../formats/checkpoint.js';
import type { SparseDelta } from './delta.js';

/** Refuse, by name, a delta whose tensors the model lacks or whose indices fall outside them (before any work). */
export function checkDeltaFits(delta: SparseDelta, ckpt: LlamaCheckpoint, what: string): void {
  for (const [name, d] of delta) {
    const t = ckpt.tensors.get(name);
    if (!t) throw new Error(`${what}: changes ${name}, which the model (${ckpt.source}) does not have; it was trained from another model`);
    const size = t.shape.reduce((a, b) => a * b, 1);
    const top = d.indices.length ? d.indices[d.indices.length - 1]! : -1;
    if (top >= size) throw new Error(`${what}: ${name} has index ${top}, outside the model's tensor of shape [${t.shape.join(', ')}] (${size} entries); it was trained from another model`);
  }
}

/** The model with the delta added: the changed tensors come out f32, the others as loaded. */
export function applyDeltaToCheckpoint(ckpt: LlamaCheckpoint, delta: SparseDelta, what = 'sparse delta'): LlamaCheckpoint {
  checkDeltaFits(delta, ckpt, what);
  const tensors = new Map<string, NamedTensor>(ckpt.tensors);
  for (const [name, d] of delta) {
    const t = ckpt.tensors.get(name)!;
    const data = Float32Array.from(tensorF32(t));
    for (let i = 0; i < d.indices.length; i++) data[d.indices[i]!] = data[d.indices[i]!]! + d.values[i]!;
    tensors.set(name, { shape: [...t.shape], data });
  }
  return { ...ckpt, tensors };
}
