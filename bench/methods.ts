/**
 * Every adapter method with its defaults, as a new user meets it: each fine-tunes stories260K on the
 * names-task (TinyStories validation stories with the characters renamed, src/data/builtin-task.ts) for
 * the same steps on the same packed rows, with nothing set but the method's name — its default config
 * and its default learning rate — and the command line's schedule (warmup 5, cosine decay, clipping at 1).
 * It reports the held-out loss before and after training next to the base model's: every method must end
 * below the base. Also the trainable parameters, the median step time and the peak RSS while training.
 * The methods that train the base weights (src/updaters: full, lisa, hft, …) run on the same task and steps
 * with the base-weight default learning rate, in a second table next to LoRA: the trainable fraction, the
 * most optimizer-state bytes held at once, the median step time and the held-out loss after training;
 * GreenTrainer's share of a full step's operations (counted on the graph) is printed beside its measured
 * selected-step time and full fine-tuning's.
 * The backend is wasm unless ADAPTKIT_BENCH_BACKEND names another (js, webgpu, auto);
 * ADAPTKIT_BENCH_METHODS=lora,full,lisa (comma-separated) runs only those methods; a base-weight method may
 * carry options after colons, as its CLI flags without the dashes (`galore:galore-rank=16`), and run
 * more than once with different ones. Grafting grafts from the full fine-tuning run's model (run first when
 * not asked for) and chooses its mask on stories between the training and held-out ones, never the held-out.
 */
import { readFileSync } from 'node:fs';
import { AdaptedModel } from '../src/adapters/adapted-model.js';
import { methodNames } from '../src/adapters/registry.js';
import { shiftNames } from '../src/data/builtin-task.js';
import { batchAt, type PackedBlocks, pack, textExamples } from '../src/data/dataset.js';
import { paragraphs } from '../src/data/text.js';
import type { Backend } from '../src/backends/backend.js';
import type { LlamaCheckpoint } from '../src/formats/checkpoint.js';
import { LlamaRuntime } from '../src/model/runtime.js';
import { createBackend } from '../src/scheduler/backends.js';
import { createTokenizer } from '../src/tokenizer/index.js';
import { fineTune } from '../src/train/finetune.js';
import { BASE_DEFAULT_LR } from '../src/cli/train-base.js';
import { UPDATERS } from '../src/updaters/index.js';
import { trainBaseWeights } from '../src/updaters/train.js';
import { graftUpdater } from '../src/updaters/graft/index.js';
import { applyDeltaToCheckpoint } from '../src/updaters/sparse/folder.js';
import { loadStories } from './models.js';

const STORIES = new URL('../../shared/assets/data/tinystories/tinystories_val.txt', import.meta.url);
export const METHODS_BENCH = { steps: 40, batch: 8, seq: 128, warmup: 5, maxGradNorm: 1, trainParagraphs: 1200, heldOutParagraphs: 64 };

/** The names-task: the first paragraphs to train on, the last ones held out. */
export function namesTask(tok: ReturnType<typeof createTokenizer>, o = METHODS_BENCH): { train: PackedBlocks; held: PackedBlocks } {
  const paras = paragraphs(readFileSync(STORIES, 'utf8')).map(shiftNames);
  return {
    train: pack(textExamples(paras.slice(0, o.trainParagraphs), tok, o.seq), o.seq, 0),
    held: pack(textExamples(paras.slice(-o.heldOutParagraphs), tok, o.seq), o.seq, 0),
  };
}

/** Stories between the names-task's training and held-out ones: where grafting chooses its mask. */
function namesValidation(tok: ReturnType<typeof createTokenizer>, o = METHODS_BENCH): PackedBlocks {
  const paras = paragraphs(readFileSync(STORIES, 'utf8')).map(shiftNames);
  return pack(textExamples(paras.slice(o.trainParagraphs, o.trainParagraphs + 32), tok, o.seq), o.seq, 0);
}

export async function heldOutLoss(rt: LlamaRuntime, held: PackedBlocks, batch: number): Promise<number> {
  const rows = Array.from({ length: held.rows }, (_, r) => batchAt(held, r, 1));
  const { loss } = await rt.evalTargets(rows.map((b) => Array.from(b.ids)), rows.map((b) => Array.from(b.targets)), { batch, seq: held.seq });
  rt.dispose();
  return loss;
}

export async function benchMethods(opts: { json: boolean }): Promise<void> {
  const ckpt = await loadStories();
  const tok = createTokenizer(ckpt.tokenizer!);
  const { train, held } = namesTask(tok);
  const O = METHODS_BENCH;
  const chosen = await createBackend(process.env.ADAPTKIT_BENCH_BACKEND ?? 'wasm');
  const backend: Backend = chosen.backend;
  const base = await heldOutLoss(new AdaptedModel(ckpt).runtime(backend), held, O.batch);
  if (!opts.json) {
    console.log(`backend: ${backend.describe()}; names-task, ${O.steps} steps of batch ${O.batch} × ${O.seq} tokens (${train.rows} packed rows), each method with its defaults`);
    console.log(`held-out loss of the base model: ${base.toFixed(4)} over ${held.rows} rows`);
    console.log(`${'method'.padEnd(15)}${'default lr'.padStart(11)}${'trainable'.padStart(10)}${'step ms'.padStart(9)}${'peak MiB'.padStart(10)}${'before'.padStart(9)}${'after'.padStart(9)}${'base'.padStart(9)}${'after−base'.padStart(12)}`);
  }
  const specs = process.env.ADAPTKIT_BENCH_METHODS?.split(',').map((m) => m.trim()).filter(Boolean);
  const wanted = specs?.map((m) => m.split(':')[0]!);
  for (const m of wanted ?? []) if (!methodNames().includes(m) && !Object.hasOwn(UPDATERS, m)) throw new Error(`ADAPTKIT_BENCH_METHODS: unknown method '${m}' (adapters: ${methodNames().join(', ')}; base weights: ${Object.keys(UPDATERS).join(', ')})`);
  const baseRuns = baseWeightRuns(specs);
  const totalWeights = [...ckpt.tensors.values()].reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  const baseRows: { method: string; lr: number; fraction: number; stateBytes: number; stepMs: number; peakRssMiB: number; after: number; summary?: Record<string, number | string> }[] = [];
  for (const name of methodNames().filter((m) => !wanted || wanted.includes(m))) {
    (globalThis as { gc?: () => void }).gc?.();
    const model = new AdaptedModel(ckpt);
    const a = model.addAdapter('default', name, {}, { seed: 1 });
    const before = await heldOutLoss(model.runtime(backend), held, O.batch);
    let peak = process.memoryUsage().rss;
    const stamps: number[] = [];
    await fineTune({
      model, adapter: 'default', backend, data: train, steps: O.steps, batch: O.batch, warmup: O.warmup, maxGradNorm: O.maxGradNorm, seed: 1,
      onStep: () => { stamps.push(performance.now()); peak = Math.max(peak, process.memoryUsage().rss); },
    });
    const gaps = stamps.slice(1).map((t, i) => t - stamps[i]!).sort((x, y) => x - y);
    const stepMs = gaps[Math.floor(gaps.length / 2)] ?? NaN;
    const after = await heldOutLoss(model.runtime(backend), held, O.batch);
    const result = {
      suite: 'methods', method: name, defaultLr: a.method.defaultLr.value, trainable: model.parameterCount('default'), stepMs, peakRssMiB: peak / 2 ** 20,
      heldOutBefore: before, heldOutAfter: after, baseHeldOut: base, belowBase: after < base, steps: O.steps, backend: backend.describe(),
    };
    // LoRA is the reference row of the base-weight table: its trainable share and its Adam moments (two f32 per parameter).
    if (name === 'lora') baseRows.push({ method: 'lora', lr: a.method.defaultLr.value, fraction: result.trainable / totalWeights, stateBytes: 8 * result.trainable, stepMs, peakRssMiB: result.peakRssMiB, after });
    if (opts.json) console.log(JSON.stringify(result));
    else {
      console.log(`${name.padEnd(15)}${String(result.defaultLr).padStart(11)}${result.trainable.toLocaleString('en-US').padStart(10)}${stepMs.toFixed(0).padStart(9)}${result.peakRssMiB.toFixed(0).padStart(10)}${before.toFixed(4).padStart(9)}${after.toFixed(4).padStart(9)}${base.toFixed(4).padStart(9)}${(after - base).toFixed(4).padStart(12)}${after < base ? '' : '  NOT BELOW THE BASE'}`);
    }
  }
  let fullModel: LlamaCheckpoint | undefined;
  for (const { name, label, options } of baseRuns) {
    (globalThis as { gc?: () => void }).gc?.();
    const entry = UPDATERS[name]!;
    const defaults = { ...Object.fromEntries(Object.entries(entry.options).map(([k, o]) => [k, o.default])), ...options };
    const lr = entry.defaultLr ?? BASE_DEFAULT_LR;
    const run = { checkpoint: ckpt, backend, data: train, steps: O.steps, batch: O.batch, warmup: O.warmup, maxGradNorm: O.maxGradNorm, seed: 1, lr };
    // Grafting needs a fine-tuned model (the full run's, with its own defaults) and stories to choose its mask on.
    if (name === 'graft') fullModel ??= (await trainBaseWeights(UPDATERS.full!.create({}, ckpt.config), { ...run, lr: BASE_DEFAULT_LR })).checkpoint;
    const updater = name === 'graft'
      ? graftUpdater({ from: fullModel!, sparsity: Number(defaults['graft-sparsity']), init: Number(defaults['graft-init']), checkEvery: Number(defaults['graft-check-every']) })
      : entry.create(defaults, ckpt.config, { config: ckpt.config, batch: O.batch, seq: O.seq, steps: O.steps });
    let peak = process.memoryUsage().rss;
    const r = await trainBaseWeights(updater, {
      ...run, ...(name === 'graft' ? { evalData: namesValidation(tok) } : {}),
      onStep: () => { peak = Math.max(peak, process.memoryUsage().rss); },
    });
    if (name === 'full') fullModel = r.checkpoint;
    // A sparse method's result is its delta over the base (grafting's trained point is not its result).
    const after = await heldOutLoss(new LlamaRuntime(r.sparseDelta ? applyDeltaToCheckpoint(ckpt, r.sparseDelta) : r.checkpoint, backend), held, O.batch);
    // A sparse method trains a fraction of its tensors' entries: its summary's figure, when it gives one.
    baseRows.push({ method: label, lr, fraction: typeof r.summary.trainableFraction === 'number' ? r.summary.trainableFraction : r.trainableFraction, stateBytes: r.optimizerStateBytes, stepMs: r.stepMs, peakRssMiB: peak / 2 ** 20, after, summary: r.summary });
    if (opts.json) {
      console.log(JSON.stringify({
        suite: 'methods', method: name, ...(label !== name ? { options } : {}), kind: 'base-weights', lr, trainableFraction: r.trainableFraction, optimizerStateBytes: r.optimizerStateBytes, stepMs: r.stepMs,
        peakRssMiB: peak / 2 ** 20, heldOutAfter: after, baseHeldOut: base, belowBase: after < base, steps: O.steps, backend: backend.describe(), summary: r.summary,
      }));
    }
  }
  if (!opts.json && baseRows.some((b) => b.method !== 'lora')) {
    console.log(`\nbase-weight methods (src/updaters) next to LoRA: same task and steps; each method's default lr (${BASE_DEFAULT_LR}; grafting's steps mask logits) and default options (or those after its name)`);
    const width = Math.max(15, ...baseRows.map((b) => b.method.length + 2));
    console.log(`${'method'.padEnd(width)}${'lr'.padStart(9)}${'trainable'.padStart(11)}${'optim KiB'.padStart(11)}${'step ms'.padStart(9)}${'peak MiB'.padStart(10)}${'after'.padStart(9)}${'after−base'.padStart(12)}`);
    for (const b of baseRows) {
      console.log(`${b.method.padEnd(width)}${String(b.lr).padStart(9)}${`${(100 * b.fraction).toFixed(2)}%`.padStart(11)}${(b.stateBytes / 1024).toFixed(0).padStart(11)}${b.stepMs.toFixed(1).padStart(9)}${b.peakRssMiB.toFixed(0).padStart(10)}${b.after.toFixed(4).padStart(9)}${(b.after - base).toFixed(4).padStart(12)}`);
    }
    const graft = baseRows.find((b) => b.method === 'graft');
    if (graft?.summary) {
      const s = graft.summary;
      console.log(`graft: from the full run's model, the rounded mask of step ${s.graftBestStep} kept ${s.graftKept} weights (${(100 * Number(s.graftKeptFraction)).toFixed(2)}%; ${(100 * Number(s.graftSparsity)).toFixed(2)}% at the start), chosen on other stories than the held-out ones; the trainable column counts the mask's logits`);
    }
    // GreenTrainer's operation count (from the training graph) next to the time a step measurably takes.
    const green = baseRows.find((b) => b.method === 'greentrainer'), full = baseRows.find((b) => b.method === 'full');
    if (green?.summary) {
      const s = green.summary, pct = (x: unknown): string => `${(100 * Number(x)).toFixed(1)}%`;
      const ms = Number(s.greenSelectedStepMs);
      console.log(`greentrainer: a selected step does ${pct(s.greenSelectedOpsFraction)} of a full fine-tuning step's operations (${pct(s.greenProbeOpsFraction)} for a probe step; ${pct(s.greenOpsSaved)} saved over the run); `
        + `measured: a selected step ${ms.toFixed(1)} ms${full ? `, full fine-tuning ${full.stepMs.toFixed(1)} ms: ${pct(ms / full.stepMs)} of its time` : ''}`);
    }
  }
  backend.dispose();
}

/**
 * The base-weight runs asked for: every method with its defaults, or those named in ADAPTKIT_BENCH_METHODS,
 * each with the options given after its name (`galore:galore-rank=16`, checked against the method's own).
 */
function baseWeightRuns(specs: string[] | undefined): { name: string; label: string; options: Record<string, string | number | boolean> }[] {
  if (!specs) return Object.keys(UPDATERS).map((name) => ({ name, label: name, options: {} }));
  return specs.filter((m) => Object.hasOwn(UPDATERS, m.split(':')[0]!)).map((spec) => {
    const [name, ...pairs] = spec.split(':');
    const entry = UPDATERS[name!]!, options: Record<string, string | number | boolean> = {};
    for (const pair of pairs) {
      const [flag, value] = pair.split('=');
      const o = entry.options[flag!];
      if (!o) throw new Error(`ADAPTKIT_BENCH_METHODS: ${name} has no option '${flag}' (it has ${Object.keys(entry.options).join(', ') || 'none'})`);
      const v = o.type === 'bool' ? value !== 'false' : o.type === 'string' ? value! : Number(value);
      if (typeof v === 'number' && !Number.isFinite(v)) throw new Error(`ADAPTKIT_BENCH_METHODS: ${name}:${flag} needs a number (got '${value}')`);
      options[flag!] = v;
    }
    return { name: name!, label: pairs.length ? `${name} ${pairs.join(' ')}` : name!, options };
  });
}
