/**
 * An encoder with a classification head and one adapter: training (cross-entropy, the adapter's parameters
 * and the whole head trained with AdamW), prediction over right-padded batches, evaluation (accuracy,
 * macro-F1, loss), and the adapter saved as a Hugging Face PEFT folder the way PEFT saves a SEQ_CLS /
 * TOKEN_CLS adapter: `task_type` set, the head listed in `modules_to_save` (PEFT adds `classifier` and
 * `score` itself; DistilBERT's `pre_classifier` and a freshly initialised BERT pooler are added here) and its
 * tensors stored as `base_model.model.<module>.weight`. The label names are kept beside it in labels.json.
 */
import { type Adapter, AdaptedModel, adapterParamName } from '../../adapters/adapted-model.js';
import { loadPeft, savePeft, type PeftFiles } from '../../adapters/peft.js';
import type { Backend } from '../../backends/backend.js';
import { getMethod } from '../../adapters/registry.js';
import type { AdapterMethod, TargetConfig } from '../../adapters/types.js';
import type { NamedTensor } from '../../formats/checkpoint.js';
import { tensorF32 } from '../../formats/checkpoint.js';
import { parseSafetensors } from '../../formats/safetensors.js';
import * as F from '../../graph/api.js';
import { gradients } from '../../graph/autodiff.js';
import { Graph, type Tensor } from '../../graph/graph.js';
import { Session } from '../../scheduler/session.js';
import { type DecayKind, lrSchedule } from '../../train/schedule.js';
import { Trainer } from '../../train/trainer.js';
import { seededRandom } from '../../util/random.js';
import { type EncoderTask, encoderModules, headLinears, positionOffset } from './config.js';
import { buildEncoder, type EncoderGraph } from './build.js';
import { type EncoderCheckpoint, withHead } from './checkpoint.js';

/** One example as token ids; `labels`: one id (seq-cls) or one per token with -100 for positions not scored (token-cls). */
export interface EncodedExample { ids: number[]; labels: number[] }

export const PEFT_TASK_TYPES: Readonly<Record<EncoderTask, string>> = { 'seq-cls': 'SEQ_CLS', 'token-cls': 'TOKEN_CLS' };
/** Entries PEFT's PeftModelForSequenceClassification / ForTokenClassification add to modules_to_save. */
const PEFT_HEAD_ENTRIES = ['classifier', 'score'];
/** The label names file written beside adapter_config.json. */
export const LABELS_FILE = 'labels.json';

export interface TrainOptions {
  steps: number;
  batch?: number;
  lr?: number;
  weightDecay?: number;
  warmup?: number;
  /** Learning-rate decay after warmup (default constant). */
  decay?: DecayKind;
  /** Clip the global gradient norm (default off). */
  maxGradNorm?: number;
  seed?: number;
  /** Called after each step with its loss. */
  onStep?: (step: number, loss: number) => void;
}

export interface EvalResult { accuracy: number; macroF1: number; loss: number; count: number; predictions: number[] }

export class EncoderClassifier {
  private constructor(
    readonly model: AdaptedModel,
    readonly base: EncoderCheckpoint,
    readonly task: EncoderTask,
    readonly labels: readonly string[],
    readonly adapter: string,
    /** The head's modules (trained whole, saved as modules_to_save). */
    readonly headModules: readonly string[],
  ) {}

  /** A fresh adapter of `method` (its options in camelCase) on `ckpt` with a `task` head for `labels`. */
  static create(ckpt: EncoderCheckpoint, task: EncoderTask, labels: readonly string[], method: string, config: Readonly<Record<string, unknown>>, o: { seed?: number; name?: string } = {}): EncoderClassifier {
    checkEncoderMethod(getMethod(method));
    const setup = withHead(ckpt, task, labels.length, o.seed ?? 0);
    const model = new AdaptedModel(setup.ckpt, encoderModules(ckpt.encoder));
    const name = o.name ?? 'default';
    const a = model.addAdapter(name, method, config, o.seed === undefined ? {} : { seed: o.seed });
    const baseOverrides = new Map(a.baseOverrides);
    for (const m of setup.modules) for (const s of ['weight', 'bias']) {
      const t = setup.ckpt.tensors.get(`${m}.${s}`)!;
      baseOverrides.set(`${m}.${s}`, { shape: [...t.shape], data: Float32Array.from(tensorF32(t)) });
    }
    const entries = [...PEFT_HEAD_ENTRIES, ...setup.modules.filter((m) => !m.startsWith('classifier')).map((m) => (m === 'bert.pooler.dense' ? 'pooler' : m))];
    const savedModules = [...new Set(setup.modules.map((m) => (m.startsWith('classifier') ? 'classifier' : m === 'bert.pooler.dense' ? 'bert.pooler' : m)))];
    model.adapters.delete(name);
    model.attach({ ...a, baseOverrides, peftExtras: { modulesToSave: entries, savedModules, tokenRows: new Map(), baseLayers: [] } });
    return new EncoderClassifier(model, setup.ckpt, task, [...labels], name, setup.modules);
  }

  /** Load a PEFT folder's files saved by `save` (or by PEFT for a SEQ_CLS / TOKEN_CLS model). */
  static load(ckpt: EncoderCheckpoint, files: PeftFiles & { labels?: string }, source = 'adapter'): EncoderClassifier {
    let json: Record<string, unknown>;
    try { json = JSON.parse(files.config) as Record<string, unknown>; } catch (e) { throw new Error(`${source}/adapter_config.json: not valid JSON (${(e as Error).message})`); }
    const taskType = json.task_type;
    const task = (Object.keys(PEFT_TASK_TYPES) as EncoderTask[]).find((t) => PEFT_TASK_TYPES[t] === taskType);
    if (!task) throw new Error(`${source}/adapter_config.json: task_type ${JSON.stringify(taskType)} is not a classification adapter (SEQ_CLS or TOKEN_CLS)`);
    let labels: string[];
    if (files.labels !== undefined) {
      try { labels = (JSON.parse(files.labels) as { labels: string[] }).labels; } catch (e) { throw new Error(`${source}/${LABELS_FILE}: not valid JSON (${(e as Error).message})`); }
      if (!Array.isArray(labels) || labels.length < 2 || !labels.every((l) => typeof l === 'string')) throw new Error(`${source}/${LABELS_FILE}: "labels" must be a list of at least 2 names`);
    } else if (ckpt.encoder.labels.length >= 2) {
      labels = [...ckpt.encoder.labels];
    } else {
      // A folder PEFT wrote has no label names: the head's rows give their number, named as transformers names them.
      const out = headLinears(ckpt.encoder, task, 2).at(-1)![0];
      const t = parseSafetensors(files.weights, `${source}/adapter_model.safetensors`).tensors.find((x) => x.name === `base_model.model.${out}.weight`);
      if (!t) throw new Error(`${source}: no ${LABELS_FILE}, the model's config.json has no id2label / num_labels, and the adapter has no ${out}.weight: the number of labels is unknown`);
      labels = Array.from({ length: t.shape[0]! }, (_, i) => `LABEL_${i}`);
    }
    const setup = withHead(ckpt, task, labels.length);
    const model = new AdaptedModel(setup.ckpt, encoderModules(ckpt.encoder));
    // PEFT lists `classifier` and `score` whatever the model has; entries this model lacks are dropped before loading.
    const names = new Set<string>();
    for (const t of setup.ckpt.tensors.keys()) { const p = t.split('.'); for (let i = 1; i < p.length; i++) names.add(p.slice(0, i).join('.')); }
    const mts = Array.isArray(json.modules_to_save) ? (json.modules_to_save as unknown[]).filter((m) => typeof m !== 'string' || [...names].some((k) => k.endsWith(m))) : json.modules_to_save;
    const a = loadPeft(model, 'default', { config: JSON.stringify({ ...json, modules_to_save: mts }), weights: files.weights }, source);
    const head = setup.modules.filter((m) => !a.baseOverrides.has(`${m}.weight`));
    if (head.length) throw new Error(`${source}: the adapter has no trained ${head.join(', ')} (the classifier head must be saved in modules_to_save)`);
    // Saved again, modules_to_save is written as it was read (with `score`).
    if (a.peftExtras && Array.isArray(json.modules_to_save)) {
      model.adapters.delete('default');
      model.attach({ ...a, peftExtras: { ...a.peftExtras, modulesToSave: json.modules_to_save as string[] } });
    }
    return new EncoderClassifier(model, setup.ckpt, task, labels, 'default', setup.modules);
  }

  /** The PEFT folder's files (adapter_config.json with task_type, adapter_model.safetensors) and labels.json. */
  save(o: { baseModel?: string } = {}): PeftFiles & { labels: string } {
    const files = savePeft(this.model, this.adapter, o);
    const config = JSON.parse(files.config) as Record<string, unknown>;
    config.task_type = PEFT_TASK_TYPES[this.task];
    return { config: `${JSON.stringify(config, null, 2)}\n`, weights: files.weights, labels: `${JSON.stringify({ task: this.task, labels: this.labels }, null, 2)}\n` };
  }

  get adapterState(): Adapter { return this.model.get(this.adapter); }

  /** Refuse a method that steers its training with a controller (AdaLoRA's rank allocation, LaMDA's freezing), which `train` does not run. */
  checkTrainable(steps: number): void {
    const a = this.adapterState;
    if (this.model.controller(a.name, steps)) throw new Error(`${a.method.name} steers its training with a controller (rank allocation or scheduled freezing), which encoder training does not run; use a method without one (${ENCODER_METHODS.join(', ')})`);
  }

  private build(g: Graph, batch: number, seq: number, training: boolean) {
    const { hooks, built } = this.model.hooks({ training });
    const net = buildEncoder(g, this.base.encoder, { batch, seq, task: this.task, numLabels: this.labels.length, hooks, padded: true });
    return { net, built };
  }

  /** Frozen weights (the effective checkpoint: head and merged adapters applied) for a graph's declared weights, except `skip`. */
  private weightData(net: EncoderGraph, skip: ReadonlySet<string> = new Set()): Map<Tensor, Float32Array> {
    const eff = this.model.effectiveCheckpoint(), out = new Map<Tensor, Float32Array>();
    for (const [name, t] of net.weights) {
      if (skip.has(name)) continue;
      const src = eff.tensors.get(name);
      if (!src) throw new Error(`${this.base.source}: the model needs tensor ${name}, which it does not have`);
      out.set(t, tensorF32(src));
    }
    return out;
  }

  /** Ids and lengths of a right-padded batch of `rows` × `seq` (rows past the examples repeat the first). */
  private feedRows(ex: readonly EncodedExample[], rows: number, seq: number) {
    const ids = new Int32Array(rows * seq).fill(this.base.encoder.padTokenId), lengths = new Int32Array(rows);
    const labelsOut = new Int32Array(this.task === 'seq-cls' ? rows : rows * seq).fill(-100);
    for (let r = 0; r < rows; r++) {
      const e = ex[r] ?? ex[0]!;
      if (e.ids.length > seq) throw new RangeError(`an example of ${e.ids.length} tokens exceeds rows of ${seq}`);
      ids.set(e.ids, r * seq);
      lengths[r] = e.ids.length;
      if (r >= ex.length) continue;
      if (this.task === 'seq-cls') labelsOut[r] = e.labels[0]!;
      else labelsOut.set(e.labels, r * seq);
    }
    return { ids, lengths, labels: labelsOut };
  }

  /**
   * Logits of each example: [L] (seq-cls) or [tokens, L] (token-cls). Examples are run longest first in
   * batches of up to `batch` rows, each padded to its longest example rounded up to a multiple of 8 (fewer
   * graph shapes; the padded keys are masked), and returned in the input order. The frozen weights are
   * shared by the sessions of every shape. Values as the backend computed them (float64 on a float64 js backend).
   */
  async logits(backend: Backend, examples: readonly { ids: number[] }[], batch = 16): Promise<Float64Array[]> {
    const L = this.labels.length, out: Float64Array[] = new Array(examples.length);
    const limit = this.base.encoder.maxPositions - positionOffset(this.base.encoder);
    examples.forEach((e, i) => {
      if (e.ids.length === 0) throw new Error(`example ${i + 1} has no tokens`);
      if (e.ids.length > limit) throw new RangeError(`example ${i + 1} has ${e.ids.length} tokens, more than the model's ${limit} positions`);
    });
    const order = examples.map((_, i) => i).sort((a, b) => examples[b]!.ids.length - examples[a]!.ids.length || a - b);
    const sessions = new Map<string, { s: Session; net: EncoderGraph }>();
    const eff = this.model.effectiveCheckpoint(), shared = new Map<string, Float32Array>();
    try {
      for (let i = 0; i < order.length; i += batch) {
        const idx = order.slice(i, i + batch), chunk = idx.map((j) => ({ ids: examples[j]!.ids, labels: [] as number[] }));
        const rows = chunk.length, seq = Math.min(limit, Math.ceil(chunk[0]!.ids.length / 8) * 8);
        const key = `${rows}x${seq}`;
        let run = sessions.get(key);
        if (!run) {
          const g = new Graph();
          const { net } = this.build(g, rows, seq, false);
          g.markOutput(net.logits);
          const weights = new Map<Tensor, Float32Array>();
          for (const [name, t] of net.weights) {
            let data = shared.get(name);
            if (!data) {
              const src = eff.tensors.get(name);
              if (!src) throw new Error(`${this.base.source}: the model needs tensor ${name}, which it does not have`);
              data = tensorF32(src);
              shared.set(name, data);
            }
            weights.set(t, data);
          }
          const s = await Session.create(g, backend, undefined, weights);
          this.model.uploadAdapterParams(s);
          run = { s, net };
          sessions.set(key, run);
        }
        const f = this.feedRows(chunk, rows, seq);
        run.s.set(run.net.ids, f.ids);
        run.s.set(run.net.keyLengths!, f.lengths);
        await run.s.run();
        const all = await run.s.get(run.net.logits) as Float32Array | Float64Array;
        idx.forEach((j, r) => {
          out[j] = Float64Array.from(this.task === 'seq-cls' ? all.subarray(r * L, r * L + L) : all.subarray(r * seq * L, (r * seq + chunk[r]!.ids.length) * L));
        });
      }
    } finally {
      for (const { s } of sessions.values()) s.dispose();
    }
    return out;
  }

  /** The training graph on `batch` rows of `seq` tokens: mean cross-entropy over the scored labels, the trained tensors by name. */
  private trainingGraph(batch: number, seq: number) {
    const g = new Graph();
    const { net, built } = this.build(g, batch, seq, true);
    const targets = g.input('labels', this.task === 'seq-cls' ? [batch] : [batch * seq], 'i32');
    const L = this.labels.length;
    const loss = F.crossEntropy(this.task === 'seq-cls' ? net.logits : F.reshape(net.logits, [batch * seq, L]), targets);
    const a = this.adapterState, params = built.get(g) ?? new Map<string, Tensor>();
    const adapterKeys = [...a.params.keys()].filter((k) => this.model.isTrainable(a.name, k));
    const headNames = this.headModules.flatMap((m) => [`${m}.weight`, `${m}.bias`]);
    const trainable = [
      ...adapterKeys.map((k) => { const p = params.get(adapterParamName(a.name, k)); if (!p) throw new Error(`adapter parameter ${k} is not used by the model`); return p; }),
      ...headNames.map((n) => net.weights.get(n)!),
    ];
    return { g, net, targets, loss, trainable, adapterKeys, headNames };
  }

  /** Upload the adapter's and the head's current values into a session of the training graph. */
  private uploadTrained(s: Session, net: EncoderGraph, headNames: readonly string[]): void {
    this.model.uploadAdapterParams(s);
    for (const n of headNames) s.set(net.weights.get(n)!, Float32Array.from(tensorF32(this.adapterState.baseOverrides.get(n)!)));
  }

  /**
   * The training loss on `data` (one batch, padded to its longest) and its gradient with respect to every
   * trained tensor: adapter parameters by key, head tensors by name.
   */
  async lossGradients(backend: Backend, data: readonly EncodedExample[]): Promise<{ loss: number; gradients: Map<string, Float64Array> }> {
    if (data.length === 0) throw new Error('no examples');
    const t = this.trainingGraph(data.length, Math.max(...data.map((e) => e.ids.length)));
    const grads = gradients(t.loss, t.trainable);
    const outs = t.trainable.map((p) => grads.get(p));
    t.g.markOutput(t.loss, ...outs);
    const s = await Session.create(t.g, backend, undefined, this.weightData(t.net, new Set(t.headNames)));
    try {
      this.uploadTrained(s, t.net, t.headNames);
      const f = this.feedRows(data, data.length, t.net.ids.shape[1]!);
      s.set(t.net.ids, f.ids);
      s.set(t.net.keyLengths!, f.lengths);
      s.set(t.targets, f.labels);
      await s.run();
      const [loss, ...values] = await s.getMany([t.loss, ...outs]);
      const names = [...t.adapterKeys, ...t.headNames];
      return { loss: loss![0]!, gradients: new Map(values.map((v, i) => [names[i]!, Float64Array.from(v!)])) };
    } finally {
      s.dispose();
    }
  }

  /** Train the adapter and the head for `steps` steps on batches drawn from a seeded shuffle. Returns each step's loss. */
  async train(backend: Backend, data: readonly EncodedExample[], o: TrainOptions): Promise<number[]> {
    if (data.length === 0) throw new Error('no training examples');
    this.checkTrainable(o.steps);
    const batch = Math.min(o.batch ?? 8, data.length), seq = Math.max(...data.map((e) => e.ids.length));
    const { g, net, targets, loss, trainable, adapterKeys, headNames } = this.trainingGraph(batch, seq);
    const a = this.adapterState;
    const trainer = await Trainer.create({
      graph: g, loss, trainable, backend, weights: this.weightData(net, new Set(headNames)),
      optimizer: {
        lr: o.lr ?? 1e-3, weightDecay: o.weightDecay ?? 0, schedule: lrSchedule(o.decay ?? 'constant', o.steps, o.warmup ?? 0),
        ...(o.maxGradNorm !== undefined ? { maxGradNorm: o.maxGradNorm } : {}),
      },
    });
    try {
      this.uploadTrained(trainer.session, net, headNames);
      const random = seededRandom((o.seed ?? 0) + 17);
      let order: number[] = [], at = 0;
      const next = (): EncodedExample => {
        if (at >= order.length) {
          order = data.map((_, i) => i);
          for (let i = order.length - 1; i > 0; i--) { const j = Math.floor(random() * (i + 1)); [order[i], order[j]] = [order[j]!, order[i]!]; }
          at = 0;
        }
        return data[order[at++]!]!;
      };
      const losses: number[] = [];
      for (let s = 1; s <= o.steps; s++) {
        const f = this.feedRows(Array.from({ length: batch }, next), batch, seq);
        const r = await trainer.step([[net.ids, f.ids], [net.keyLengths!, f.lengths], [targets, f.labels], ...dropoutSeed(g, o.seed ?? 0, s)]);
        losses.push(r.loss);
        o.onStep?.(s, r.loss);
      }
      const values = await trainer.trainableValues();
      for (const k of adapterKeys) a.params.get(k)!.data.set(values.get(adapterParamName(a.name, k))!);
      for (const n of headNames) (a.baseOverrides.get(n) as { data: Float32Array }).data.set(values.get(n)!);
      return losses;
    } finally {
      trainer.session.dispose();
    }
  }

  /** Predicted label ids and softmax probabilities of each example (token-cls: per token). */
  async predict(backend: Backend, examples: readonly { ids: number[] }[], batch = 16): Promise<{ label: number[]; probs: number[][] }[]> {
    const L = this.labels.length;
    return (await this.logits(backend, examples, batch)).map((z) => {
      const label: number[] = [], probs: number[][] = [];
      for (let i = 0; i < z.length; i += L) {
        const row = Array.from(z.subarray(i, i + L)), m = Math.max(...row), e = row.map((v) => Math.exp(v - m)), s = e.reduce((x, y) => x + y, 0);
        probs.push(e.map((v) => v / s));
        label.push(row.indexOf(m));
      }
      return { label, probs };
    });
  }

  /** Accuracy, macro-F1 and mean cross-entropy over the scored labels (token-cls: every labelled token). */
  async evaluate(backend: Backend, data: readonly EncodedExample[], batch = 16): Promise<EvalResult> {
    if (data.length === 0) throw new Error('no evaluation examples');
    const preds = await this.predict(backend, data, batch);
    const gold: number[] = [], pred: number[] = [];
    let loss = 0;
    data.forEach((e, i) => {
      const p = preds[i]!;
      e.labels.forEach((y, t) => {
        if (y === -100) return;
        gold.push(y); pred.push(p.label[this.task === 'seq-cls' ? 0 : t]!);
        loss -= Math.log(Math.max(p.probs[this.task === 'seq-cls' ? 0 : t]![y]!, 1e-30));
      });
    });
    return { ...classificationScores(gold, pred), loss: loss / gold.length, count: gold.length, predictions: pred };
  }
}

/** Methods encoder classifiers train: those that act on linear layers only, without a training controller. */
export const ENCODER_METHODS = ['lora', 'ia3', 'ssf', 'hydra'];

/** Refuse a method that adapts what the encoder graph does not expose (input embeddings, attention prefixes, sublayer outputs). */
export function checkEncoderMethod(m: AdapterMethod<TargetConfig>): void {
  const what = m.embeddings ? 'the input embeddings (virtual tokens)' : m.attentionPrefix ? 'an attention prefix' : m.sublayer ? 'sublayer outputs' : undefined;
  if (what) throw new Error(`${m.name} adapts ${what}, which the encoder classifiers do not support; use ${ENCODER_METHODS.join(', ')}`);
}

function dropoutSeed(g: Graph, seed: number, s: number): [Tensor, Int32Array][] {
  const input = g.byName('dropout_seed');
  return input ? [[input, Int32Array.of((seed * 1000003 + s * 7919) | 0)]] : [];
}

/**
 * Accuracy and macro-F1 of predictions against gold labels. Macro-F1 averages the per-label F1 over the
 * labels that occur in either list (scikit-learn's default); a label never predicted and never gold does not count.
 */
export function classificationScores(gold: readonly number[], pred: readonly number[]): { accuracy: number; macroF1: number } {
  if (gold.length !== pred.length || gold.length === 0) throw new Error('classificationScores needs equally long, non-empty lists');
  let right = 0;
  const tp = new Map<number, number>(), fp = new Map<number, number>(), fn = new Map<number, number>();
  const inc = (m: Map<number, number>, k: number) => m.set(k, (m.get(k) ?? 0) + 1);
  gold.forEach((y, i) => {
    const p = pred[i]!;
    if (p === y) { right++; inc(tp, y); } else { inc(fp, p); inc(fn, y); }
  });
  const labels = new Set([...gold, ...pred]);
  let f1 = 0;
  for (const l of labels) {
    const t = tp.get(l) ?? 0, denom = 2 * t + (fp.get(l) ?? 0) + (fn.get(l) ?? 0);
    f1 += denom === 0 ? 0 : (2 * t) / denom;
  }
  return { accuracy: right / gold.length, macroF1: f1 / labels.size };
}

export type { NamedTensor };
