/**
 * One row of bench/scale.ts in a process of its own: a synthetic model of the row's shape and base type,
 * LoRA r=16 on all seven projections, `steps` training steps on wasm. Prints one JSON line: training
 * tokens/s (the steps after the first), the process's peak RSS and the planned memory (backend + host).
 */
import { createWasmBackend } from '../src/backends/wasm/index.js';
import { syntheticCheckpoint } from '../src/model/synthetic.js';
import { estimateTraining } from '../src/train/memory.js';
import { AdaptedModel } from '../src/adapters/adapted-model.js';
import { LLAMA_PROJECTIONS } from '../src/model/llama.js';
import { SCALE_MODELS } from './scale.js';
import { loraRun } from './train.js';

const row = JSON.parse(process.argv[2]!) as { model: string; baseDtype: 'f32' | 'f16' | 'q8_0' | 'q4_0'; checkpointing: boolean; batch: number; seq: number; steps: number };
const ckpt = syntheticCheckpoint(SCALE_MODELS[row.model]!, { dtype: row.baseDtype });
const backend = await createWasmBackend();
const probe = new AdaptedModel(ckpt);
probe.addAdapter('default', 'lora', { r: 16, alpha: 32, targetModules: [...LLAMA_PROJECTIONS] }, { seed: 1 });
const e = estimateTraining(probe, 'default', backend, { batch: row.batch, seq: row.seq, checkpointing: row.checkpointing });
const r = await loraRun(ckpt, backend, row.batch, row.seq, Math.max(3, row.steps), false, { rank: 16, checkpointing: row.checkpointing });
console.log(JSON.stringify({ tokensPerSecond: r.tokensPerSecond, peakMiB: process.resourceUsage().maxRSS / 1024, estimateMiB: (e.totalBytes + e.hostBytes) / 2 ** 20 }));
backend.dispose();
