/**
 * Planned training memory of the model shapes (no weights loaded, nothing run): the arena that
 * planGraph gives the forward + backward graph of LoRA r=16 on all seven projections, batch 8 × 512, with
 * the whole logits, with chunked cross-entropy ('auto'), with per-layer activation checkpointing, and with
 * both. The arena holds the f32 frozen weights too; `activations` is the rest.
 */
import { AdaptedModel } from '../src/adapters/adapted-model.js';
import type { LlamaConfig } from '../src/formats/checkpoint.js';
import { gradients } from '../src/graph/autodiff.js';
import { numel } from '../src/graph/types.js';
import { LLAMA_PROJECTIONS } from '../src/model/llama.js';
import type { CeChunk } from '../src/model/loss.js';
import { planGraph } from '../src/scheduler/plan.js';
import { buildTrainingGraph } from '../src/train/finetune.js';

const base = { maxSeqLen: 4096, normEps: 1e-6, ropeTheta: 1e6, ropeLayout: 'half', tiedEmbeddings: true } as const;
const SHAPES: { name: string; config: LlamaConfig }[] = [
  { name: 'smollm2-135m', config: { ...base, dim: 576, hiddenDim: 1536, nLayers: 30, nHeads: 9, nKvHeads: 3, vocabSize: 49152, qkvBias: false, architecture: 'llama' } },
  { name: 'qwen2.5-0.5b', config: { ...base, dim: 896, hiddenDim: 4864, nLayers: 24, nHeads: 14, nKvHeads: 2, vocabSize: 151936, qkvBias: true, architecture: 'qwen2' } },
  { name: 'qwen2.5-1.5b', config: { ...base, dim: 1536, hiddenDim: 8960, nLayers: 28, nHeads: 12, nKvHeads: 2, vocabSize: 151936, qkvBias: true, architecture: 'qwen2' } },
];
const BATCH = 8, SEQ = 512;
const VARIANTS: { label: string; ceChunk: CeChunk; checkpointing: boolean }[] = [
  { label: 'whole logits', ceChunk: 0, checkpointing: false },
  { label: 'chunked CE', ceChunk: 'auto', checkpointing: false },
  { label: 'checkpointing', ceChunk: 0, checkpointing: true },
  { label: 'chunked CE + checkpointing', ceChunk: 'auto', checkpointing: true },
];
const MiB = (elems: number): number => Math.round(elems * 4 / 2 ** 20);

export async function benchArena(opts: { json: boolean }): Promise<void> {
  for (const { name, config } of SHAPES) {
    // Planning needs shapes only: the adapter's modules come from the config, no base tensor is read.
    const model = new AdaptedModel({ config, tensors: new Map(), source: name });
    model.addAdapter('t', 'lora', { r: 16, alpha: 32, targetModules: [...LLAMA_PROJECTIONS] }, { seed: 1 });
    let first = 0;
    for (const v of VARIANTS) {
      const t = buildTrainingGraph(model, 't', { batch: BATCH, seq: SEQ, checkpointing: v.checkpointing, ceChunk: v.ceChunk });
      gradients(t.loss, t.trainable, { checkpoint: t.segments });
      t.graph.markOutput(t.loss);
      const arena = planGraph(t.graph).arenaElems;
      const weights = t.graph.values.filter((x) => x.kind === 'param').reduce((a, x) => a + numel(x.shape), 0);
      first ||= arena;
      const row = { bench: 'arena', model: name, batch: BATCH, seq: SEQ, ceChunk: v.ceChunk, checkpointing: v.checkpointing, arenaMiB: MiB(arena), weightsMiB: MiB(weights), activationsMiB: MiB(arena - weights) };
      if (opts.json) console.log(JSON.stringify(row));
      else console.log(`${name.padEnd(14)} ${v.label.padEnd(28)} arena ${String(row.arenaMiB).padStart(7)} MiB (${(arena / first).toFixed(2)}×)  weights ${row.weightsMiB} MiB  activations ${row.activationsMiB} MiB`);
    }
  }
}
