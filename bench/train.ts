/**
 * Training benchmarks.
 * - The one-block transformer (the toy task): one training step on js (the baseline) and on wasm.
 * - LoRA r=8 on all seven projections, batch 8 × 256: training tokens/s and peak memory for stories260K
 *   and a synthetic dim-512, 8-layer Llama on wasm (and webgpu when a hardware adapter exists); where
 *   /usr/bin/python3 has torch, the same LoRA step in PyTorch eager, measured in the same run, and the ratio.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AdaptedModel } from '../src/adapters/adapted-model.js';
import type { Backend } from '../src/backends/backend.js';
import { createJsBackend } from '../src/backends/js/index.js';
import type { LlamaCheckpoint, LlamaConfig } from '../src/formats/checkpoint.js';
import { createBackend } from '../src/scheduler/backends.js';
import type { StepProfile } from '../src/scheduler/profile.js';
import { trainTransformerBlock } from '../src/toy/tasks.js';
import { fineTune } from '../src/train/finetune.js';
import { LLAMA_PROJECTIONS } from '../src/model/llama.js';
import { SYNTH_512, hardwareWebgpu, loadStories, syntheticCheckpoint } from './models.js';

interface Opts { json: boolean }
const emit = (o: Opts, obj: Record<string, unknown>, text: string): void => { console.log(o.json ? JSON.stringify(obj) : text); };

async function blockStep(backend: Backend): Promise<number> {
  // Time steps 3..7 (the first ones include planning and upload).
  const times: number[] = [];
  let last = performance.now();
  await trainTransformerBlock(backend, { steps: 8, onStep: (s) => { const now = performance.now(); if (s > 3) times.push(now - last); last = now; } });
  return Math.min(...times);
}

function peakRss(): number { return process.memoryUsage().rss; }

/**
 * Fine-tune `steps` steps of LoRA r=8 on random tokens; returns tokens/s over the timed steps and peak RSS.
 * With `profile`, the last step's kernels are timed too (and that step is left out of the throughput).
 */
export async function loraRun(ckpt: LlamaCheckpoint, backend: Backend, batch: number, seq: number, steps: number, profile = false, o: { rank?: number; checkpointing?: boolean } = {}): Promise<{ tokensPerSecond: number; peakMiB: number; stepSeconds: number; profile?: StepProfile | null }> {
  const model = new AdaptedModel(ckpt);
  const r = o.rank ?? 8;
  model.addAdapter('default', 'lora', { r, alpha: 2 * r, targetModules: [...LLAMA_PROJECTIONS] }, { seed: 1 });
  const V = ckpt.config.vocabSize, rows = batch * 2;
  const ids = Int32Array.from({ length: rows * (seq + 1) }, (_, i) => (i * 7919 + 13) % V);
  const targets = Int32Array.from({ length: rows * seq }, (_, i) => ids[Math.floor(i / seq) * (seq + 1) + (i % seq) + 1]!);
  const data = { ids, targets, rows, seq, paddingRatio: 0, naivePaddingRatio: 0 };
  let peak = peakRss();
  const stamps: number[] = [];
  const res = await fineTune({ model, adapter: 'default', backend, data, steps, batch, lr: 1e-3, profile, ...(o.checkpointing ? { checkpointing: true } : {}), onStep: () => { stamps.push(performance.now()); peak = Math.max(peak, peakRss()); } });
  const timed = stamps.slice(1, profile ? -1 : undefined);
  const perStep = (timed[timed.length - 1]! - timed[0]!) / Math.max(1, timed.length - 1);
  return { tokensPerSecond: (batch * seq) / (perStep / 1000), peakMiB: peak / 2 ** 20, stepSeconds: perStep / 1000, ...(profile ? { profile: res.profile ?? null } : {}) };
}

export function torchLora(cfg: LlamaConfig & { rank?: number; checkpointing?: boolean }, batch: number, seq: number, steps: number): { stepSeconds: number; peakMiB: number } | undefined {
  if (!existsSync('/usr/bin/python3')) return undefined;
  const script = fileURLToPath(new URL('./torch_lora.py', import.meta.url));
  const r = spawnSync('/usr/bin/python3', [script, JSON.stringify({ ...cfg, batch, seq, steps })], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '2' }, maxBuffer: 16 << 20 });
  if (r.status !== 0) {
    // Said on stderr, so a row without a PyTorch figure shows why (no torch, or a MemoryError on a big row).
    console.error(`PyTorch baseline (batch ${batch} × ${seq}) did not finish: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').pop()}`);
    return undefined;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

export async function benchTrain(o: Opts): Promise<void> {
  const wasm = (await createBackend('wasm')).backend;
  const js = createJsBackend();
  const tJs = await blockStep(js), tWasm = await blockStep(wasm);
  emit(o, { bench: 'block-step', backend: 'js', ms: tJs }, `one-block transformer, one step (batch 8 × 16): js ${tJs.toFixed(1)} ms (baseline)`);
  emit(o, { bench: 'block-step', backend: 'wasm', ms: tWasm, vsJs: tJs / tWasm }, `                                         wasm ${tWasm.toFixed(1)} ms (${(tJs / tWasm).toFixed(1)}× js)`);

  const stories = await loadStories();
  const gpu = await hardwareWebgpu();
  if (!gpu) emit(o, { bench: 'lora-train', backend: 'webgpu', skipped: 'no hardware WebGPU adapter' }, 'webgpu: no hardware adapter here, not measured');
  for (const [name, ckpt, steps] of [['stories260K', stories, 6], ['synthetic dim512×8L', syntheticCheckpoint(SYNTH_512), 3]] as const) {
    const r = await loraRun(ckpt, wasm, 8, 256, steps);
    emit(o, { bench: 'lora-train', model: name, backend: 'wasm', batch: 8, seq: 256, tokensPerSecond: r.tokensPerSecond, stepSeconds: r.stepSeconds, peakMiB: r.peakMiB },
      `LoRA r=8, 7 projections, ${name}, batch 8 × 256, wasm: ${r.tokensPerSecond.toFixed(0)} tokens/s (${r.stepSeconds.toFixed(2)} s/step), peak RSS ${r.peakMiB.toFixed(0)} MiB`);
    if (gpu) {
      const g = await loraRun(ckpt, gpu, 8, 256, steps);
      emit(o, { bench: 'lora-train', model: name, backend: 'webgpu', adapter: gpu.describe(), batch: 8, seq: 256, tokensPerSecond: g.tokensPerSecond, stepSeconds: g.stepSeconds, vsWasm: g.tokensPerSecond / r.tokensPerSecond },
        `  webgpu (${gpu.describe()}): ${g.tokensPerSecond.toFixed(0)} tokens/s (${(g.tokensPerSecond / r.tokensPerSecond).toFixed(2)}× wasm)`);
    }
    if (name.startsWith('synthetic')) {
      const t = torchLora(SYNTH_512, 8, 256, 3);
      if (t) {
        const tps = 2048 / t.stepSeconds;
        emit(o, { bench: 'lora-train', model: name, backend: 'pytorch-cpu', tokensPerSecond: tps, stepSeconds: t.stepSeconds, peakMiB: t.peakMiB, wasmVsTorch: r.tokensPerSecond / tps },
          `  PyTorch CPU eager (same model, LoRA, batch): ${tps.toFixed(0)} tokens/s (${t.stepSeconds.toFixed(2)} s/step), peak RSS ${t.peakMiB.toFixed(0)} MiB; wasm/PyTorch = ${(r.tokensPerSecond / tps).toFixed(2)}`);
      } else {
        emit(o, { bench: 'lora-train', backend: 'pytorch-cpu', skipped: 'torch not importable by /usr/bin/python3' }, '  PyTorch: not measured (install python3-torch libopenblas0-pthread for /usr/bin/python3)');
      }
    }
  }
  wasm.dispose();
  gpu?.dispose();
}
