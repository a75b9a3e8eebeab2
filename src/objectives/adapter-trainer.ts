/**
 * The training graph every objective of this folder shares: the model with the adapter's transform on
 * `rows` rows of `seq` tokens, the objective's task loss built on it, the adapter's regularisers added,
 * and a Trainer over the adapter's trainable parameters with the frozen weights shared (one copy).
 */
import type { AdaptedModel, Adapter } from '../adapters/adapted-model.js';
import { adapterParamName } from '../adapters/adapted-model.js';
import type { Backend } from '../backends/backend.js';
import * as F from '../graph/api.js';
import { Graph, type Tensor } from '../graph/graph.js';
import type { LlamaGraph } from '../model/llama.js';
import { buildModel } from '../model/families.js';
import { checkpointDtypes, weightSources } from '../model/runtime.js';
import { contextNeeded } from '../train/finetune.js';
import { type DecayKind, lrSchedule } from '../train/schedule.js';
import { Trainer } from '../train/trainer.js';
import type { LlamaCheckpoint } from '../formats/checkpoint.js';

export interface ObjectiveRun {
  model: AdaptedModel;
  adapter: string;
  backend: Backend;
  steps: number;
  lr?: number;
  warmup?: number;
  decay?: DecayKind;
  weightDecay?: number;
  maxGradNorm?: number;
  seed?: number;
}

export interface ObjectiveGraph {
  readonly graph: Graph;
  readonly net: LlamaGraph;
  /** The objective's own loss (reported as "loss"). */
  readonly task: Tensor;
  /** The adapter's regularisers by name; the objective is task + their sum. */
  readonly terms: ReadonlyMap<string, Tensor>;
  readonly objective: Tensor;
  readonly trainable: Tensor[];
  readonly weights: LlamaCheckpoint;
}

/** Refuses what no objective here can drive, naming `who`: rows past the context, a method with a controller. */
export function checkObjectiveRun(who: string, o: ObjectiveRun, seq: number): Adapter {
  const adapter = o.model.get(o.adapter);
  const { needed, reserved } = contextNeeded(o.model, seq);
  const context = o.model.base.config.maxSeqLen;
  if (needed > context) throw new RangeError(`${who}: rows of ${seq} tokens${reserved ? ` plus ${reserved} adapter positions` : ''} exceed the model's context of ${context}`);
  if (o.model.taskCount() !== undefined) throw new Error(`${who}: ${adapter.method.name} routes each row by a task id, which this objective does not supply; train it with the next-token objective (fineTune, train --objective lm)`);
  if (o.model.controller(adapter.name, o.steps)) throw new Error(`${who}: ${adapter.method.name} steers its training with a controller (rank allocation or scheduled freezing), which this objective does not run; use a method without one (LoRA, DoRA, IA3, …)`);
  return adapter;
}

/**
 * The model on `rows` × `seq` tokens with the adapter, and `task(graph, net)` on it. `embeddings`, when
 * given, transforms the token embeddings [rows, seq, D] before any input-side adapter sees them (mixup).
 */
export function buildObjectiveGraph(
  model: AdaptedModel, adapterName: string, rows: number, seq: number, task: (g: Graph, net: LlamaGraph) => Tensor,
  o: { embeddings?: (x: Tensor, g: Graph) => Tensor } = {},
): ObjectiveGraph {
  const adapter = model.get(adapterName);
  const g = new Graph();
  const { hooks: adapterHooks, built, regularizers } = model.hooks({ training: true });
  const wrap = o.embeddings;
  const hooks = wrap
    ? { ...adapterHooks, embeddings: (x: Tensor, graph: Graph, e: { decoding: boolean; batch: number }) => (adapterHooks.embeddings ? adapterHooks.embeddings(wrap(x, graph), graph, e) : wrap(x, graph)) }
    : adapterHooks;
  const weights = model.effectiveCheckpoint();
  const net = buildModel(g, weights.config, { batch: rows, seq, hooks, weightDtype: checkpointDtypes(weights) });
  const t = task(g, net);
  const terms = regularizers(g);
  const objective = [...terms.values()].reduce((sum, r) => F.add(sum, r), t);
  const params = built.get(g) ?? new Map<string, Tensor>();
  const trainable = [...adapter.params.keys()].filter((k) => model.isTrainable(adapter.name, k)).map((k) => {
    const p = params.get(adapterParamName(adapter.name, k));
    if (!p) throw new Error(`adapter '${adapter.name}' parameter ${k} is not used by the model graph`);
    return p;
  });
  return { graph: g, net, task: t, terms, objective, trainable, weights };
}

/** A Trainer for the graph with the run's optimizer settings; the adapter's current values uploaded. */
export async function objectiveTrainer(o: ObjectiveRun, d: ObjectiveGraph, extraTerms: ReadonlyMap<string, Tensor> = new Map()): Promise<Trainer> {
  const adapter = o.model.get(o.adapter);
  const trainer = await Trainer.create({
    graph: d.graph, loss: d.objective, task: d.task, terms: new Map([...d.terms, ...extraTerms]), trainable: d.trainable, backend: o.backend,
    weights: weightSources(d.net.weights, d.weights),
    optimizer: {
      lr: o.lr ?? adapter.method.defaultLr.value, weightDecay: o.weightDecay ?? 0, schedule: lrSchedule(o.decay ?? 'cosine', o.steps, o.warmup ?? 0),
      ...(o.maxGradNorm !== undefined ? { maxGradNorm: o.maxGradNorm } : {}),
    },
  });
  o.model.uploadAdapterParams(trainer.session);
  return trainer;
}

/** Copy the trainer's values of the adapter's parameters into the adapter. */
export async function syncAdapter(o: ObjectiveRun, trainer: Trainer): Promise<void> {
  const adapter = o.model.get(o.adapter);
  for (const [name, values] of await trainer.trainableValues()) adapter.params.get(name.slice(adapter.name.length + 1))!.data.set(values);
}

/** The dropout seed feed for step `s`, when the graph has dropout. */
export function dropoutFeed(d: ObjectiveGraph, seed: number | undefined, s: number): [Tensor, Int32Array][] {
  const input = d.graph.byName('dropout_seed');
  return input ? [[input, Int32Array.of(((seed ?? 0) * 1000003 + s * 7919) | 0)]] : [];
}
