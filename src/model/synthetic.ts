/**
 * Llama checkpoints with small random weights, for trying a model's shape (memory estimates, benchmarks,
 * tests) without its file. Weights are drawn tensor by tensor and stored in the requested type at once,
 * so a compact copy of a large shape never exists in float32 as a whole.
 */
import { expectedTensorShapes, type LlamaCheckpoint, type LlamaConfig, type NamedTensor } from '../formats/checkpoint.js';
import { type CompactDType, quantize } from '../quant/index.js';
import { seededRandom } from '../util/random.js';

export interface SyntheticOptions {
  seed?: number;
  /** Storage type of the 2-D weights (default f32); a q type keeps rows that are not whole 32-blocks in f16. */
  dtype?: 'f32' | CompactDType;
  /** Uniform weights in ±scale/2 (default 0.04). */
  scale?: number;
}

export function syntheticCheckpoint(config: LlamaConfig, o: SyntheticOptions = {}): LlamaCheckpoint {
  const r = seededRandom(o.seed ?? 1), scale = o.scale ?? 0.04, dtype = o.dtype ?? 'f32';
  const tensors = new Map<string, NamedTensor>();
  for (const [name, shape] of expectedTensorShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = name.endsWith('norm.weight') ? new Float32Array(n).fill(1) : Float32Array.from({ length: n }, () => (r() - 0.5) * scale);
    if (shape.length !== 2 || dtype === 'f32') { tensors.set(name, { shape, data }); continue; }
    const d: CompactDType = dtype.startsWith('q') && shape[1]! % 32 !== 0 ? 'f16' : dtype;
    tensors.set(name, { shape, dtype: d, bytes: quantize(d, data) });
  }
  return { config, tensors, source: `synthetic ${config.dim}x${config.nLayers}${dtype === 'f32' ? '' : ` ${dtype}`}` };
}
