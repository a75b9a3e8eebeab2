/** Models for benchmarks: stories260K from the shared assets, and synthetic Llamas of a chosen size. */
import type { LlamaCheckpoint, LlamaConfig } from '../src/formats/checkpoint.js';
import { loadCheckpoint } from '../src/formats/checkpoint.js';
import { syntheticCheckpoint as synthetic } from '../src/model/synthetic.js';

export const STORIES = new URL('../../shared/assets/models/stories260K/stories260K.gguf', import.meta.url).pathname;

export function loadStories(): Promise<LlamaCheckpoint> { return loadCheckpoint(STORIES); }

/** The synthetic model: dim 512, 8 layers, 8 heads, vocab 32,000 (FFN 1376, as Llama's 8/3·dim rounded). */
export const SYNTH_512: LlamaConfig = {
  dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 8, vocabSize: 32000, maxSeqLen: 1024, normEps: 1e-5,
  ropeTheta: 10000, tiedEmbeddings: false, qkvBias: false, ropeLayout: 'half', architecture: 'llama',
};

/** A checkpoint with small random weights (norm weights one). */
export function syntheticCheckpoint(config: LlamaConfig, seed = 1): LlamaCheckpoint {
  return synthetic(config, { seed });
}

/** A WebGPU backend on a hardware adapter, or undefined (none, or only a software one, which is no speed reference). */
export async function hardwareWebgpu(): Promise<import('../src/backends/backend.js').Backend | undefined> {
  try {
    const { createWebgpuBackend } = await import('../src/backends/webgpu/index.js');
    const b = await createWebgpuBackend();
    if (!b.context.adapter.software) return b;
    b.dispose();
  } catch { /* no adapter */ }
  return undefined;
}
