/**
 * `npm run bench -- scale`: the models people fine-tune, at their real shapes with random weights —
 * SmolLM2-135M, Qwen2.5-0.5B and Qwen2.5-1.5B — LoRA r=16 on all seven projections, batch 8 × 512 (or the
 * largest batch that fits, printed), base f32 / f16 / q8_0 / q4_0, with and without activation
 * checkpointing, on wasm (and webgpu where a hardware adapter exists): training tokens/s and peak RSS, and
 * PyTorch CPU eager fp32 (/usr/bin/python3, 2 threads) on the same model, LoRA and batch in the same run.
 *
 * Each row runs in a child process of its own, so its peak RSS is its own. A row that does not fit is
 * planned smaller before anything is allocated (the memory estimate), never discovered by a crash.
 *
 * Flags (after `--`): --models smollm2-135m,qwen2.5-0.5b,qwen2.5-1.5b  --dtypes f32,f16,q8_0,q4_0
 * --checkpointing on,off  --batch 8 --seq 512 --steps 3 (the first is a warm-up; at least 3)  --no-torch
 * --estimate-only (print the planned memory of every row, wasm and webgpu, without running: seconds)
 * A full run of the biggest rows takes hours on 2 cores: narrow it with the flags.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AdaptedModel } from '../src/adapters/adapted-model.js';
import { createWasmBackend } from '../src/backends/wasm/index.js';
import type { LlamaCheckpoint, LlamaConfig, NamedTensor } from '../src/formats/checkpoint.js';
import { expectedTensorShapes } from '../src/formats/checkpoint.js';
import { LLAMA_PROJECTIONS } from '../src/model/llama.js';
import { type CompactDType, compactBytes } from '../src/quant/types.js';
import { estimatePlanMemory, formatBytes, memoryProblem } from '../src/scheduler/memory.js';
import { planTraining } from '../src/train/memory.js';
import { planMatmulFlops, torchSgemm, wasmFmaPeak } from './peak.js';
import { torchLora } from './train.js';

const base = { maxSeqLen: 4096, normEps: 1e-6, ropeTheta: 1e6, tiedEmbeddings: true, ropeLayout: 'half' as const };
export const SCALE_MODELS: Record<string, LlamaConfig> = {
  'smollm2-135m': { ...base, dim: 576, hiddenDim: 1536, nLayers: 30, nHeads: 9, nKvHeads: 3, vocabSize: 49152, qkvBias: false, architecture: 'llama', ropeTheta: 1e5 },
  'qwen2.5-0.5b': { ...base, dim: 896, hiddenDim: 4864, nLayers: 24, nHeads: 14, nKvHeads: 2, vocabSize: 151936, qkvBias: true, architecture: 'qwen2' },
  'qwen2.5-1.5b': { ...base, dim: 1536, hiddenDim: 8960, nLayers: 28, nHeads: 12, nKvHeads: 2, vocabSize: 151936, qkvBias: true, architecture: 'qwen2' },
};
const DTYPES = ['f32', 'f16', 'q8_0', 'q4_0'] as const;
type BaseType = (typeof DTYPES)[number];
const RANK = 16;

interface Row { model: string; baseDtype: BaseType; checkpointing: boolean; batch: number; seq: number; steps: number }

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const list = <T extends string>(name: string, all: readonly T[]): T[] => {
  const v = flag(name);
  if (!v) return [...all];
  const got = v.split(',') as T[];
  for (const x of got) if (!all.includes(x)) throw new Error(`--${name}: unknown ${x} (choices: ${all.join(', ')})`);
  return got;
};

/**
 * A checkpoint with the model's shapes and storage types but no weight data: enough to plan a run
 * (graphs need shapes and types only), and nothing the size of the model is allocated.
 */
function shapeOnly(config: LlamaConfig, dtype: BaseType): LlamaCheckpoint {
  const tensors = new Map<string, NamedTensor>();
  for (const [name, shape] of expectedTensorShapes(config)) {
    if (shape.length !== 2 || dtype === 'f32') tensors.set(name, { shape, data: new Float32Array(0) });
    else tensors.set(name, { shape, dtype: dtype.startsWith('q') && shape[1]! % 32 !== 0 ? 'f16' : dtype, bytes: new Uint8Array(0) });
  }
  return { config, tensors, source: 'shapes only' };
}

function loraModel(ckpt: LlamaCheckpoint): AdaptedModel {
  const m = new AdaptedModel(ckpt);
  m.addAdapter('default', 'lora', { r: RANK, alpha: 2 * RANK, targetModules: [...LLAMA_PROJECTIONS] }, { seed: 1 });
  return m;
}

/** Host bytes of the loaded base in `dtype` (what the process keeps beside the backend). */
function hostBytes(config: LlamaConfig, dtype: BaseType): number {
  let n = 0;
  for (const [, shape] of expectedTensorShapes(config)) {
    const elems = shape.reduce((a, b) => a * b, 1);
    const d: CompactDType | 'f32' = shape.length !== 2 || dtype === 'f32' ? 'f32' : dtype.startsWith('q') && shape[1]! % 32 !== 0 ? 'f16' : dtype;
    n += d === 'f32' ? 4 * elems : compactBytes(d, elems);
  }
  return n;
}

/** The largest batch (halving from the asked one) whose plan fits the wasm backend; 0 when none does. */
async function fittingBatch(row: Row): Promise<number> {
  const wasm = await createWasmBackend({ threads: 1 });
  try {
    const model = loraModel(shapeOnly(SCALE_MODELS[row.model]!, row.baseDtype));
    for (let b = row.batch; b >= 1; b = Math.floor(b / 2)) {
      const plan = planTraining(model, 'default', { batch: b, seq: row.seq, checkpointing: row.checkpointing });
      if (!memoryProblem(estimatePlanMemory(plan, wasm), wasm.memoryCaps!())) return b;
    }
    return 0;
  } finally {
    wasm.dispose();
  }
}

async function estimates(rows: Row[], json: boolean): Promise<void> {
  const wasm = await createWasmBackend({ threads: 2 });
  const { webgpuPlanBuffers } = await import('../src/backends/webgpu/index.js');
  for (const row of rows) {
    const model = loraModel(shapeOnly(SCALE_MODELS[row.model]!, row.baseDtype));
    const plan = planTraining(model, 'default', { batch: row.batch, seq: row.seq, checkpointing: row.checkpointing });
    const e = estimatePlanMemory(plan, wasm);
    const gpu = await webgpuPlanBuffers(plan);
    const host = hostBytes(SCALE_MODELS[row.model]!, row.baseDtype);
    const problem = memoryProblem(e, wasm.memoryCaps!());
    const out = { bench: 'scale-estimate', model: row.model, baseDtype: row.baseDtype, checkpointing: row.checkpointing, batch: row.batch, seq: row.seq, wasmBytes: e.totalBytes, wasmFits: !problem, hostBytes: host, webgpuBytes: gpu.total, webgpuLargestBuffer: gpu.largest };
    console.log(json ? JSON.stringify(out) : `${row.model.padEnd(13)} ${row.baseDtype.padEnd(5)} ${row.checkpointing ? 'ckpt' : '    '} ${row.batch}×${row.seq}: wasm ${formatBytes(e.totalBytes)}${problem ? ' (does not fit)' : ''} + host ${formatBytes(host)}; webgpu buffers ${formatBytes(gpu.total)} (largest ${formatBytes(gpu.largest)})`);
  }
  wasm.dispose();
}

function runRow(row: Row): Record<string, unknown> {
  const script = fileURLToPath(new URL('./scale-row.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', '--import', 'tsx', script, JSON.stringify(row)], { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.status !== 0) return { error: (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ') };
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

export async function benchScale(o: { json: boolean }): Promise<void> {
  const models = list('models', Object.keys(SCALE_MODELS));
  const dtypes = list('dtypes', DTYPES);
  const ckpts = list('checkpointing', ['off', 'on'] as const).map((x) => x === 'on');
  const batch = Number(flag('batch') ?? 8), seq = Number(flag('seq') ?? 512), steps = Number(flag('steps') ?? 3);
  const rows: Row[] = models.flatMap((model) => dtypes.flatMap((baseDtype) => ckpts.map((checkpointing) => ({ model, baseDtype, checkpointing, batch, seq, steps }))));
  if (process.argv.includes('--estimate-only')) return estimates(rows, o.json);
  const torchDone = new Map<string, { stepSeconds: number; peakMiB: number } | undefined>();
  // The ceilings both sides run under on this CPU, measured before the rows so they share its state.
  const fmaPeak = await wasmFmaPeak(2);
  const torchPeak = process.argv.includes('--no-torch') ? undefined : torchSgemm(2);
  if (o.json) console.log(JSON.stringify({ bench: 'scale-peak', threads: 2, wasmFmaGflops: fmaPeak, torchSgemmGflops: torchPeak ?? null }));
  else console.log(`ceilings, 2 threads: wasm f32x4 FMA ${fmaPeak.toFixed(0)} GFLOP/s${torchPeak ? `; PyTorch SGEMM (torch.mm 2048², its BLAS) ${torchPeak.toFixed(0)} GFLOP/s = ${(torchPeak / fmaPeak).toFixed(2)}× wasm's` : ''}`);
  for (const asked of rows) {
    const b = await fittingBatch(asked);
    if (b === 0) {
      console.log(o.json ? JSON.stringify({ bench: 'scale', ...asked, tokensPerSecond: null, error: 'no batch fits' }) : `${asked.model} ${asked.baseDtype}: no batch fits on wasm`);
      continue;
    }
    const row = { ...asked, batch: b };
    const ours = runRow(row);
    const model = loraModel(shapeOnly(SCALE_MODELS[row.model]!, row.baseDtype));
    // Matmul work per token of one training step as planned; at the FMA peak no step could go faster than this.
    const flopsPerToken = planMatmulFlops(planTraining(model, 'default', { batch: b, seq, checkpointing: row.checkpointing })) / (b * seq);
    const ceiling = (fmaPeak * 1e9) / flopsPerToken;
    // PyTorch runs each (model, batch, checkpointing) once: the base type is ours alone (its weights stay fp32).
    const key = `${row.model} ${b} ${row.checkpointing}`;
    if (!process.argv.includes('--no-torch') && !torchDone.has(key)) torchDone.set(key, torchLora({ ...SCALE_MODELS[row.model]!, rank: RANK, checkpointing: row.checkpointing }, b, seq, steps));
    const torch = torchDone.get(key);
    const torchTps = torch ? (b * seq) / torch.stepSeconds : null;
    const out = {
      bench: 'scale', model: row.model, backend: 'wasm', baseDtype: row.baseDtype, checkpointing: row.checkpointing, batch: b, seq,
      tokensPerSecond: ours.tokensPerSecond ?? null, peakMiB: ours.peakMiB ?? null, estimateMiB: ours.estimateMiB ?? null,
      torchTokensPerSecond: torchTps, torchPeakMiB: torch?.peakMiB ?? null, matmulGflopPerToken: flopsPerToken / 1e9, fmaCeilingTokensPerSecond: ceiling,
      ...(ours.error ? { error: ours.error } : {}),
    };
    if (o.json) console.log(JSON.stringify(out));
    else {
      const tps = out.tokensPerSecond as number | null;
      console.log(`${row.model.padEnd(13)} ${row.baseDtype.padEnd(5)} ${row.checkpointing ? 'ckpt' : '    '} ${b}×${seq}${b < asked.batch ? ` (batch ${asked.batch} does not fit)` : ''}: ${tps ? `${tps.toFixed(1)} tok/s, peak ${(out.peakMiB as number).toFixed(0)} MiB (estimate ${(out.estimateMiB as number).toFixed(0)} MiB)` : `error ${String(out.error)}`}${torchTps ? `; PyTorch fp32 eager ${torchTps.toFixed(1)} tok/s, ${torch!.peakMiB.toFixed(0)} MiB → ${tps ? (tps / torchTps).toFixed(2) : '–'}×` : ''}`);
      console.log(`  matmul work ${(flopsPerToken / 1e9).toFixed(2)} GFLOP/token: at the wasm FMA peak ≤ ${ceiling.toFixed(1)} tok/s${tps ? `; measured ${((100 * tps) / ceiling).toFixed(0)}% of that` : ''}`);
    }
  }
}
