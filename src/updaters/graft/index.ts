/**
 * Skill localisation by grafting (Panigrahi et al., 2023) as an Updater. The run starts at the soft graft
 * θ₀ + σ(s₀) ⊙ (θ_ft − θ₀) (`start`); every base tensor the fine-tuning changed trains through a host optimizer
 * (MaskLogitDescent) that turns the trainer's ∂L/∂θ into ∂L/∂s, takes a gradient step on the logits s and
 * writes the new soft graft back, so the forward and backward passes are the trainer's own. Every
 * `checkEvery` steps (and before the first update and after the last) the rounded mask 1[σ(s) > 0.5] is
 * scored on the run's held-out data; the best one is the result, a sparse delta θ_ft − θ₀ on its entries.
 */
import { type LlamaCheckpoint, type NamedTensor, loadCheckpoint, tensorF32 } from '../../formats/checkpoint.js';
import type { UpdaterEntry } from '../registry-types.js';
import { applyDeltaToCheckpoint } from '../sparse/apply.js';
import { type SparseDelta, readSparseDelta } from '../sparse/delta.js';
import { baseTensors } from '../train.js';
import type { TensorOptimizer, TensorOptimizerHyper, Updater, UpdaterContext } from '../types.js';
import { initialMaskLogits, roundedGraft, sigmoid, softGraft } from './mask.js';

/** ∂L/∂s = ∂L/∂θ ⊙ (θ_ft − θ₀) ⊙ σ(s)(1 − σ(s)) for entry i of one tensor. */
function logitGradient(grad: Float32Array, base: Float32Array, tuned: Float32Array, logits: Float32Array, i: number): number {
  const p = sigmoid(logits[i]!);
  return grad[i]! * (tuned[i]! - base[i]!) * p * (1 - p);
}

/**
 * Gradient descent on one tensor's mask logits. The parameter the graph sees is the soft graft; its gradient
 * ∂L/∂θ becomes ∂L/∂s = ∂L/∂θ ⊙ (θ_ft − θ₀) ⊙ σ(s)(1 − σ(s)), s takes the step s − η·∂L/∂s / rms(∂L/∂s) (the
 * root mean square over every masked weight of the model, `shared.scale`, set before the updates), and the
 * parameter becomes θ₀ + σ(s) ⊙ (θ_ft − θ₀) again. Plain descent keeps the logits' relative speeds, as the
 * paper's code does (Adam would move every logit at the same speed whatever its gradient, and open the mask
 * wholesale); the one global scale makes η a step in logit units whatever the model's gradient magnitudes, so
 * the run's learning rate, schedule and ranges apply unchanged (the reference takes raw steps at rates ~1e7).
 */
export class MaskLogitDescent implements TensorOptimizer {
  constructor(readonly base: Float32Array, readonly tuned: Float32Array, readonly logits: Float32Array, private readonly shared: { scale: number }) {}
  /** Σ (∂L/∂s)² over this tensor for a gradient ∂L/∂θ. */
  squaredLogitGradient(grad: Float32Array): number {
    let t = 0;
    for (let i = 0; i < this.logits.length; i++) t += logitGradient(grad, this.base, this.tuned, this.logits, i) ** 2;
    return t;
  }
  update(param: Float32Array, grad: Float32Array, h: TensorOptimizerHyper): void {
    const { base, tuned, logits } = this;
    // Normalised by the global RMS, the step is the same with or without the run's clipping (gradScale).
    const rate = this.shared.scale > 0 ? h.lr / this.shared.scale : 0;
    for (let i = 0; i < logits.length; i++) {
      logits[i] = logits[i]! - rate * logitGradient(grad, base, tuned, logits, i);
      param[i] = base[i]! + sigmoid(logits[i]!) * (tuned[i]! - base[i]!);
    }
  }
  /** The logits and the two models' copies of this tensor (the state the mask needs). */
  stateBytes(): number {
    return this.logits.byteLength + this.base.byteLength + this.tuned.byteLength;
  }
}

export interface GraftOptions {
  /** The fine-tuned model: a checkpoint of the base's shape, or a folder holding a sparse delta over the base or a whole model. */
  from: LlamaCheckpoint | string;
  /** The fraction of all base weights grafted at the start (the largest |θ_ft − θ₀|), in (0, 1] (default 0.01). */
  sparsity?: number;
  /** |s₀|: the logits start at +init on the grafted entries and −init elsewhere (default 3). */
  init?: number;
  /** Score the rounded mask on the held-out data every this many steps (default 10; also before the first update and after the last). */
  checkEvery?: number;
}

/** Read the fine-tuned model and refuse, by name, one that is not the base's shape. */
export async function loadFineTuned(from: LlamaCheckpoint | string, base: LlamaCheckpoint): Promise<LlamaCheckpoint> {
  let tuned: LlamaCheckpoint;
  if (typeof from !== 'string') tuned = from;
  else {
    // Node's file system, imported only here so that the library stays loadable in browsers.
    const { existsSync, readFileSync, statSync } = await import('node:fs');
    const { join } = await import('node:path');
    if (!existsSync(from)) throw new Error(`graft: the fine-tuned model ${from} does not exist`);
    const dir = statSync(from).isDirectory(), cfgPath = join(from, 'adapter_config.json');
    const cfg = dir && existsSync(cfgPath) ? (JSON.parse(readFileSync(cfgPath, 'utf8')) as { peft_type?: string; adapter_name?: string }) : undefined;
    if (cfg?.peft_type === 'SFT') {
      const delta = readSparseDelta(new Uint8Array(readFileSync(join(from, 'adapter_model.safetensors'))), typeof cfg.adapter_name === 'string' ? cfg.adapter_name : undefined);
      return applyDeltaToCheckpoint(base, delta, `graft: the fine-tuned delta ${from}`);
    }
    if (cfg) throw new Error(`graft: ${from} holds a PEFT adapter, not a fine-tuned model (merge it first: adaptkit merge) or a sparse delta`);
    const path = !dir || existsSync(join(from, 'config.json')) ? from : join(from, 'model.gguf');
    if (dir && !existsSync(path)) throw new Error(`graft: ${from} holds no model (config.json and model.safetensors, or model.gguf) and no sparse delta`);
    tuned = await loadCheckpoint(path);
  }
  for (const k of ['dim', 'nLayers', 'nHeads', 'nKvHeads', 'vocabSize', 'hiddenDim'] as const) {
    if (tuned.config[k] !== base.config[k]) throw new Error(`graft: the fine-tuned model ${tuned.source} has ${k} ${tuned.config[k]}, the base ${base.source} ${base.config[k]}; it was not fine-tuned from this base`);
  }
  for (const [name, t] of base.tensors) {
    const u = tuned.tensors.get(name);
    if (!u) throw new Error(`graft: the fine-tuned model ${tuned.source} has no tensor ${name}`);
    if (u.shape.length !== t.shape.length || u.shape.some((d, i) => d !== t.shape[i])) throw new Error(`graft: ${name} is [${u.shape.join(', ')}] in the fine-tuned model ${tuned.source} but [${t.shape.join(', ')}] in the base ${base.source}`);
  }
  return tuned;
}

export type GraftUpdater = Updater & {
  /** The mask logits of the tensors that graft (by name; live: they change as the run trains). */
  readonly logits: ReadonlyMap<string, Float32Array>;
  /** The best rounded mask so far: its step, held-out loss and entries (undefined before the first check). */
  best(): { step: number; loss: number | undefined; entries: number } | undefined;
  /** The rounded grafts scored so far, in order. */
  readonly checks: { step: number; loss: number | undefined; entries: number }[];
};

export function graftUpdater(o: GraftOptions): GraftUpdater {
  const sparsity = o.sparsity ?? 0.01, init = o.init ?? 3, checkEvery = o.checkEvery ?? 10;
  if (!(sparsity > 0 && sparsity <= 1)) throw new RangeError(`graft: sparsity must be in (0, 1] (got ${sparsity})`);
  if (!(init > 0 && Number.isFinite(init))) throw new RangeError(`graft: the initial logit magnitude must be > 0 (got ${init})`);
  if (!(Number.isInteger(checkEvery) && checkEvery >= 1)) throw new RangeError(`graft: check-every must be an integer ≥ 1 (got ${checkEvery})`);
  let prepared: { base: LlamaCheckpoint; start: LlamaCheckpoint } | undefined;
  /** Per tensor the fine-tuning changed: its optimizer (base, tuned, logits). */
  const masks = new Map<string, MaskLogitDescent>();
  /** The RMS of ∂L/∂s over every masked weight at this step, read before the updates. */
  const shared = { scale: 0 };
  let totalWeights = 0;
  const checks: { step: number; loss: number | undefined; entries: number }[] = [];
  let best: { step: number; loss: number | undefined; entries: number; on: Map<string, Int32Array> } | undefined;

  /** The entries of the rounded mask that change a weight, per tensor (sorted). */
  const roundedEntries = (): Map<string, Int32Array> => {
    const out = new Map<string, Int32Array>();
    for (const [n, m] of masks) {
      const idx: number[] = [];
      for (let i = 0; i < m.logits.length; i++) if (m.logits[i]! > 0 && m.tuned[i] !== m.base[i]) idx.push(i);
      if (idx.length) out.set(n, Int32Array.from(idx));
    }
    return out;
  };

  /** Score the rounded mask on the held-out data; keep it when it is the best (or when there is no held-out data: the latest). */
  const check = async (ctx: UpdaterContext): Promise<void> => {
    if (checks.length && checks[checks.length - 1]!.step === ctx.step) return;
    const on = roundedEntries();
    const entries = [...on.values()].reduce((a, x) => a + x.length, 0);
    const replace = new Map([...masks].map(([n, m]) => [n, roundedGraft(m.base, m.tuned, m.logits)] as [string, Float32Array]));
    const loss = await ctx.heldOutLoss?.(replace);
    checks.push({ step: ctx.step, loss, entries });
    if (!best || loss === undefined || best.loss === undefined || loss < best.loss) best = { step: ctx.step, loss, entries, on };
    const pct = (100 * entries / totalWeights).toPrecision(3);
    ctx.log(`graft: step ${ctx.step}: rounded mask ${entries} weights (${pct}%), held-out loss ${loss === undefined ? 'n/a (no held-out data: the latest mask is kept)' : loss.toFixed(4)}; best at step ${best.step}${best.loss !== undefined ? ` (${best.loss.toFixed(4)})` : ''}`);
  };

  return {
    method: 'graft',
    checks,
    get logits() { return new Map([...masks].map(([n, m]) => [n, m.logits] as [string, Float32Array])); },
    best: () => (best ? { step: best.step, loss: best.loss, entries: best.entries } : undefined),
    async start(base) {
      if (prepared?.base === base) return prepared.start;
      const tuned = await loadFineTuned(o.from, base);
      const names = baseTensors(base).map((t) => t.name);
      const baseValues = new Map(names.map((n) => [n, tensorF32(base.tensors.get(n)!)]));
      const tunedValues = new Map(names.map((n) => [n, tensorF32(tuned.tensors.get(n)!)]));
      const diffs = new Map(names.map((n) => {
        const b = baseValues.get(n)!, t = tunedValues.get(n)!;
        return [n, Float32Array.from(t, (x, i) => x - b[i]!)] as [string, Float32Array];
      }));
      totalWeights = names.reduce((a, n) => a + diffs.get(n)!.length, 0);
      const logits = initialMaskLogits(diffs, sparsity, init);
      masks.clear();
      const tensors = new Map<string, NamedTensor>(base.tensors);
      for (const n of names) {
        // A tensor the fine-tuning left alone has nothing to graft: it stays frozen (and compact).
        if (!diffs.get(n)!.some((d) => d !== 0)) continue;
        const m = new MaskLogitDescent(Float32Array.from(baseValues.get(n)!), Float32Array.from(tunedValues.get(n)!), logits.get(n)!, shared);
        masks.set(n, m);
        tensors.set(n, { shape: [...base.tensors.get(n)!.shape], data: softGraft(m.base, m.tuned, m.logits) });
      }
      if (masks.size === 0) throw new Error(`graft: the fine-tuned model ${tuned.source} equals the base ${base.source}: nothing to graft`);
      best = undefined;
      checks.length = 0;
      prepared = { base, start: { ...base, tensors } };
      return prepared.start;
    },
    initialTrainable: () => {
      if (!prepared) throw new Error('graft: start(base) must run before training (trainBaseWeights calls it)');
      return masks.keys();
    },
    tensorOptimizer: (name) => masks.get(name),
    beforeUpdate: async (ctx) => {
      // Before the first update: the initial mask (the top fraction by magnitude) is the first candidate.
      if (ctx.step === 0) await check(ctx);
      const grads = await ctx.gradients([...masks.keys()]);
      let squares = 0, count = 0;
      for (const [n, m] of masks) { squares += m.squaredLogitGradient(grads.get(n)!); count += m.logits.length; }
      shared.scale = Math.sqrt(squares / Math.max(1, count));
    },
    afterStep: async (ctx) => {
      if (ctx.step % checkEvery === 0) await check(ctx);
      return undefined;
    },
    summary: () => ({
      graftSparsity: sparsity, graftInit: init,
      graftKept: best?.entries ?? 0, graftKeptFraction: best && totalWeights ? best.entries / totalWeights : 0,
      graftBestStep: best?.step ?? 0, ...(best?.loss !== undefined ? { graftBestLoss: best.loss } : {}),
    }),
    // Asked after the last step (which afterStep does not see): its mask is scored, then the best is saved.
    sparseDelta: async (ctx) => {
      await check(ctx);
      const out: SparseDelta = new Map();
      for (const [n, indices] of best!.on) {
        const m = masks.get(n)!;
        out.set(n, { indices, values: Float32Array.from(indices, (i) => m.tuned[i]! - m.base[i]!) });
      }
      return out;
    },
  };
}

export const GRAFT: UpdaterEntry = {
  help: 'skill localisation by grafting: a sigmoid mask over a fine-tuned model\'s difference from --model, from its largest entries, trained by gradient descent on the logits; the best rounded mask on --eval-data is kept (a sparse delta)',
  options: {
    'graft-from': { type: 'string', help: 'the fine-tuned model to graft from: a folder holding a sparse delta over --model (train --method spiel|lt-sft) or a whole model of its shape (config.json and model.safetensors, or model.gguf)', path: { kind: 'folder' } },
    'graft-sparsity': { type: 'number', help: 'the fraction of all weights grafted at the start (the largest |fine-tuned − base|)', default: 0.01, range: { above: 0, max: 1 } },
    'graft-init': { type: 'number', help: 'the initial mask logits: +VALUE on the grafted weights, −VALUE elsewhere', default: 3, range: { above: 0 } },
    'graft-check-every': { type: 'int', help: 'score the rounded mask on --eval-data every N steps (and before the first and after the last); the best is saved', default: 10, range: { integer: true, min: 1 } },
  },
  defaultLr: 0.1,
  create: (v) => {
    if (v['graft-from'] === undefined) throw new RangeError('--method graft needs --graft-from DIR (the fine-tuned model whose difference from --model is grafted)');
    return graftUpdater({
      from: String(v['graft-from']),
      sparsity: Number(v['graft-sparsity'] ?? 0.01),
      init: Number(v['graft-init'] ?? 3),
      checkEvery: Number(v['graft-check-every'] ?? 10),
    });
  },
};
