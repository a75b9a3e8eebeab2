/**
 * Shared checks for adapter methods on the real stories260K model: finite-difference gradients (float64),
 * a short fine-tune on the built-in hero task, merged-vs-unmerged logits, and PEFT-folder round trips.
 */
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { loadPeft, savePeft } from '../../src/adapters/peft.js';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { heroStories } from '../../src/data/builtin-task.js';
import { type PackedBlocks, batchAt, pack, textExamples } from '../../src/data/dataset.js';
import { type LlamaCheckpoint, loadCheckpoint, withRopeLayout } from '../../src/formats/checkpoint.js';
import * as F from '../../src/graph/api.js';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph } from '../../src/graph/graph.js';
import { buildLlama } from '../../src/model/llama.js';
import { INSTANCE_INPUT } from '../../src/model/names.js';
import { TASK_ID_INPUT } from '../../src/model/names.js';
import { setInstance, uploadWeights } from '../../src/model/runtime.js';
import { Session } from '../../src/scheduler/session.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { fineTune } from '../../src/train/finetune.js';
import { STORIES_GGUF } from '../assets.js';
import { maxRelErr, randn, rng } from '../helpers.js';

let cached: LlamaCheckpoint | undefined;
export async function stories(): Promise<LlamaCheckpoint> {
  cached ??= await loadCheckpoint(STORIES_GGUF);
  return cached;
}

/** Hero stories packed into rows of `seq` tokens; a different seed gives held-out stories. */
export function heroBlocks(ckpt: LlamaCheckpoint, seq: number, count: number, seed = 7): PackedBlocks {
  const tok = createTokenizer(ckpt.tokenizer!);
  return pack(textExamples(heroStories(count, seed), tok, seq), seq, 0);
}

/** Give every parameter of an adapter seeded random values (zero-initialised factors hide gradients). */
export function randomizeParams(model: AdaptedModel, name: string, scale = 0.05, keep: (key: string) => boolean = () => false): void {
  let k = 0;
  for (const [key, p] of model.get(name).params) {
    k++;
    if (!keep(key)) p.data.set(randn(p.data.length, 100 + k, scale));
  }
}

/**
 * Central finite differences against autodiff for every parameter tensor the adapter puts in the graph
 * (six random entries each; every `stride`-th tensor), in float64 on the js backend, with the adapter's
 * loss terms included.
 * Returns the worst error relative to the largest probed gradient of each tensor. Throws when a tensor's
 * gradient is all zero: such a check could not fail.
 */
export async function gradientCheck(model: AdaptedModel, name: string, o: { batch?: number; seq?: number; probe?: (key: string) => boolean; eps?: number; stride?: number; tasks?: number[]; training?: boolean } = {}): Promise<{ worst: number; keys: string[] }> {
  const B = o.batch ?? 2, T = o.seq ?? 6;
  const cfg = model.base.config;
  const g = new Graph();
  // With `training`, the graph is the training one (dropout, relaxed routing), its random draws fixed by one seed.
  const { hooks, built, regularizers } = model.hooks({ training: o.training ?? false });
  const net = buildLlama(g, cfg, { batch: B, seq: T, hooks });
  const targets = g.input('targets', [B * T], 'i32');
  const logits = net.virtualTokens ? F.slice(net.logits, 1, net.virtualTokens, net.virtualTokens + T) : net.logits;
  const ce = F.crossEntropy(F.reshape(logits, [-1, cfg.vocabSize]), targets);
  const loss = [...regularizers(g).values()].reduce((sum, r) => F.add(sum, r), ce);
  const prefix = `${name}/`;
  const params = [...built.get(g)!.entries()].filter(([n]) => n.startsWith(prefix) && (o.probe?.(n.slice(prefix.length)) ?? true)).map(([, t]) => t);
  const grads = gradients(loss, params);
  g.markOutput(loss);
  const s = await Session.create(g, createJsBackend({ precision: 'f64' }));
  uploadWeights(s, net.weights, model.effectiveCheckpoint());
  model.uploadAdapterParams(s);
  const r = rng(5);
  s.set(net.ids, Int32Array.from({ length: B * T }, () => Math.floor(r() * cfg.vocabSize)));
  // Instance-dependent prompts (IDPT) read a per-row representation: random rows here.
  const instance = g.byName(INSTANCE_INPUT);
  if (instance) s.set(instance, randn(B * cfg.dim, 77, 0.5));
  s.set(targets, Int32Array.from({ length: B * T }, (_, i) => (i === 4 ? -100 : Math.floor(r() * cfg.vocabSize))));
  setRowInputs(g, s, B, o.tasks);
  await s.run();
  const eps = o.eps ?? 1e-5;
  // All analytic gradients at the unperturbed point, before any probe moves a parameter.
  const analytics = await s.getMany(params.map((t) => grads.get(t)));
  // Finite differences of a loss that ignores a tensor are zero too: an all-zero gradient would pass
  // while checking nothing (a factor beside a zero-initialised one, like LoRA's A beside B = 0).
  params.forEach((t, i) => {
    if (analytics[i]!.every((v) => v === 0)) throw new Error(`gradientCheck: the gradient of ${t.info.name} is all zero, so there is nothing to check (randomizeParams gives zero-initialised factors values)`);
  });
  let worst = 0;
  for (const [ti, t] of params.entries()) {
    // Every stride-th tensor is probed (all of them get an analytic gradient above).
    if (ti % (o.stride ?? 1) !== 0) continue;
    const base = Float64Array.from(await s.get(t));
    const num: number[] = [], an: number[] = [];
    for (let k = 0; k < 6; k++) {
      const i = Math.floor(r() * base.length);
      const x = Float64Array.from(base);
      x[i] = base[i]! + eps; s.set(t, x); await s.run(); const up = (await s.get(loss))[0]!;
      x[i] = base[i]! - eps; s.set(t, x); await s.run(); const down = (await s.get(loss))[0]!;
      num.push((up - down) / (2 * eps)); an.push(analytics[ti]![i]!);
    }
    s.set(t, base);
    worst = Math.max(worst, maxRelErr(an, num));
  }
  s.dispose();
  return { worst, keys: params.map((p) => p.info.name!.slice(prefix.length)) };
}

/** Each row's task id (default 0) and a fixed dropout seed, for graphs that read them. */
function setRowInputs(g: Graph, s: Session, batch: number, tasks?: readonly number[]): void {
  const t = g.byName(TASK_ID_INPUT), seed = g.byName('dropout_seed');
  if (t) s.set(t, tasks ? Int32Array.from(tasks) : new Int32Array(batch));
  if (seed) s.set(seed, Int32Array.of(4242));
}

/** Mean next-token loss over packed blocks through the model's runtime (adapters as they are now). */
export async function evalLoss(model: AdaptedModel, blocks: PackedBlocks, backend: Backend = createJsBackend()): Promise<number> {
  const rt = model.runtime(backend);
  const T = blocks.seq;
  const rows: number[][] = [], tg: number[][] = [];
  for (let r = 0; r < blocks.rows; r++) {
    const b = batchAt(blocks, r, 1);
    rows.push(Array.from(b.ids.subarray(0, T)));
    tg.push(Array.from(b.targets.subarray(0, T)));
  }
  // Adapters that route by task read each row's (blocks without task ids: task 0).
  const tasks = model.taskCount() !== undefined ? { tasks: Array.from(blocks.tasks ?? new Int32Array(blocks.rows), (t) => Math.max(0, t)) } : {};
  const res = await rt.evalTargets(rows, tg, { batch: 4, seq: T, ...tasks });
  rt.dispose();
  return res.loss;
}

/** Fine-tune on the hero task (js backend, float32) and report the held-out loss before and after. */
export async function trainHero(model: AdaptedModel, name: string, o: { steps: number; batch?: number; seq?: number; lr?: number; onStep?: (step: number) => void }): Promise<{ before: number; after: number; losses: number[]; run: Awaited<ReturnType<typeof fineTune>>['run'] }> {
  const seq = o.seq ?? 32;
  const train = heroBlocks(model.base, seq, 24, 7), held = heroBlocks(model.base, seq, 8, 99);
  const backend = createJsBackend();
  const before = await evalLoss(model, held, backend);
  const { losses, run } = await fineTune({
    model, adapter: name, backend, data: train, steps: o.steps, batch: o.batch ?? 4, lr: o.lr ?? 1e-2, decay: 'constant', seed: 1,
    ...(o.onStep ? { onStep: (r) => o.onStep!(r.step) } : {}),
  });
  const after = await evalLoss(model, held, backend);
  return { before, after, losses, run };
}

/** Logits [B·T·V] of a forward pass with the model's current adapters and merged weights (float32). */
export async function forwardLogits(model: AdaptedModel, ids: Int32Array, batch: number, seq: number, tasks?: readonly number[]): Promise<Float32Array> {
  const g = new Graph();
  const { hooks } = model.hooks({ training: false });
  // The effective config: an adapter that replaces the output layer unties it from the embedding.
  const weights = model.effectiveCheckpoint();
  const net = buildLlama(g, weights.config, { batch, seq, hooks });
  g.markOutput(net.logits);
  const s = await Session.create(g, createJsBackend());
  uploadWeights(s, net.weights, weights);
  model.uploadAdapterParams(s);
  s.set(net.ids, ids);
  setRowInputs(g, s, batch, tasks);
  // IDPT: every token of a row is context here (the runtime's logits() does the same).
  setInstance(s, hooks, ids, undefined, batch, seq);
  await s.run();
  const out = Float32Array.from(await s.get(net.logits));
  s.dispose();
  return out;
}

/** Largest |merged − unmerged| logit on a fixed batch; leaves the adapter unmerged. */
export async function mergeGap(model: AdaptedModel, name: string): Promise<number> {
  const r = rng(11);
  const ids = Int32Array.from({ length: 2 * 12 }, () => Math.floor(r() * model.base.config.vocabSize));
  const unmerged = await forwardLogits(model, ids, 2, 12);
  model.merge(name);
  const merged = await forwardLogits(model, ids, 2, 12);
  model.unmerge(name);
  const again = await forwardLogits(model, ids, 2, 12);
  let gap = 0;
  for (let i = 0; i < merged.length; i++) gap = Math.max(gap, Math.abs(merged[i]! - unmerged[i]!), Math.abs(again[i]! - unmerged[i]!));
  return gap;
}

/** Save an adapter as a PEFT folder's files and load them into a fresh model on the same base. */
export function roundTrip(model: AdaptedModel, name: string): { model: AdaptedModel; config: Record<string, unknown>; tensors: string[] } {
  const files = savePeft(model, name);
  const fresh = new AdaptedModel(model.base);
  loadPeft(fresh, name, files, 'roundtrip');
  const config = JSON.parse(files.config) as Record<string, unknown>;
  const header = new DataView(files.weights.buffer, files.weights.byteOffset).getUint32(0, true);
  const json = JSON.parse(new TextDecoder().decode(files.weights.subarray(8, 8 + header))) as Record<string, unknown>;
  return { model: fresh, config, tensors: Object.keys(json).filter((k) => k !== '__metadata__') };
}

/**
 * Largest logit difference between the model with its adapter and a Hugging Face rotate-half copy of the
 * base with the adapter loaded from its saved files: zero up to float rounding when q_proj/k_proj tensors
 * are saved in Hugging Face's orientation.
 */
export async function hfLayoutGap(model: AdaptedModel, name: string): Promise<number> {
  const files = savePeft(model, name);
  const hf = new AdaptedModel(withRopeLayout(model.base, 'half'));
  loadPeft(hf, name, files, 'hf-layout');
  const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 53 + 3) % model.base.config.vocabSize);
  const [a, b] = [await forwardLogits(model, ids, 2, 8), await forwardLogits(hf, ids, 2, 8)];
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

/**
 * Greedy tokens twice: through the runtime's KV-cache decoder (one position per run), and by re-running the
 * whole sequence without a cache each step. Input-side adapters must give the same tokens both ways.
 */
export async function greedyBothWays(model: AdaptedModel, prompt: number[], steps: number): Promise<{ cached: number[]; full: number[] }> {
  const rt = model.runtime(createJsBackend());
  const cached = await rt.generate(prompt, { maxTokens: steps, stopTokens: [] });
  rt.dispose();
  const seq = [...prompt], V = model.base.config.vocabSize;
  for (let i = 0; i < steps; i++) {
    const logits = await forwardLogits(model, Int32Array.from(seq), 1, seq.length);
    const last = logits.subarray(logits.length - V);
    let best = 0;
    for (let v = 1; v < V; v++) if (last[v]! > last[best]!) best = v;
    seq.push(best);
  }
  return { cached, full: seq.slice(prompt.length) };
}
