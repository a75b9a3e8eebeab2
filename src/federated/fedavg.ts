/**
 * Federated training simulated in one process (FedAvg, McMahan et al. 2017, as FedIns uses it): N clients,
 * each with its own data shard; every round each client starts from the global adapter, trains
 * `localSteps` steps on its shard, and the server replaces the global adapter by the shard-size-weighted
 * mean of the clients' adapters. No networking: the clients take turns on one backend.
 *
 * Each client keeps its own AdamW moments from round to round (local optimizer state), and the learning
 * rate is constant, so that one client is exactly central training for rounds × localSteps steps.
 */
import type { AdaptedModel } from '../adapters/adapted-model.js';
import type { ParamStore } from '../adapters/types.js';
import type { Backend } from '../backends/backend.js';
import { batchAt, type PackedBlocks } from '../data/dataset.js';
import { fineTune } from '../train/finetune.js';
import type { TrainingState } from '../train/training-state.js';

export interface FederatedOptions {
  /** A fresh model on the base, with the adapter `adapter` added the same way (same method, config, seed) each call. */
  makeModel(): AdaptedModel;
  adapter: string;
  backend: Backend;
  /** One data shard per client. */
  shards: readonly PackedBlocks[];
  rounds: number;
  localSteps: number;
  batch: number;
  lr?: number;
  seed?: number;
  /** After each round: every client's adapter values before averaging, and the new global values. */
  onRound?(round: number, clients: readonly ParamStore[], global: ParamStore, losses: readonly number[][]): void;
}

const copyStore = (s: ParamStore): ParamStore => new Map([...s].map(([k, v]) => [k, { shape: [...v.shape], data: Float32Array.from(v.data) }]));

/** The shard-size-weighted mean of the clients' parameters. */
export function weightedMean(stores: readonly ParamStore[], weights: readonly number[]): ParamStore {
  const total = weights.reduce((a, b) => a + b, 0);
  if (!(total > 0)) throw new Error('fedavg: the clients hold no data');
  const out: ParamStore = new Map();
  for (const [k, v] of stores[0]!) {
    const acc = new Float64Array(v.data.length);
    stores.forEach((s, c) => {
      const d = s.get(k)!.data, w = weights[c]! / total;
      for (let i = 0; i < acc.length; i++) acc[i] += w * d[i]!;
    });
    out.set(k, { shape: [...v.shape], data: Float32Array.from(acc) });
  }
  return out;
}

/** Run the rounds; returns the global model (its adapter holds the averaged values). */
export async function federatedTrain(o: FederatedOptions): Promise<AdaptedModel> {
  if (o.shards.length === 0) throw new Error('fedavg: no clients');
  const empty = o.shards.findIndex((s) => s.rows === 0);
  if (empty >= 0) throw new Error(`fedavg: client ${empty}'s shard has no rows`);
  for (const [k, v] of Object.entries({ rounds: o.rounds, localSteps: o.localSteps, batch: o.batch })) {
    if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`fedavg: ${k} must be an integer ≥ 1 (got ${v})`);
  }
  const global = o.makeModel();
  const clients = o.shards.map(() => o.makeModel());
  const states: (TrainingState | undefined)[] = o.shards.map(() => undefined);
  const weights = o.shards.map((s) => s.rows);
  for (let round = 0; round < o.rounds; round++) {
    const after: ParamStore[] = [], losses: number[][] = [];
    for (const [c, model] of clients.entries()) {
      const a = model.get(o.adapter);
      for (const [k, v] of global.get(o.adapter).params) a.params.get(k)!.data.set(v.data);
      const r = await fineTune({
        model, adapter: o.adapter, backend: o.backend, data: o.shards[c]!, steps: (round + 1) * o.localSteps, batch: o.batch,
        decay: 'constant', seed: o.seed ?? 0, ...(o.lr !== undefined ? { lr: o.lr } : {}), ...(states[c] ? { resume: states[c] } : {}),
      });
      await r.run.syncAdapter();
      states[c] = await r.run.exportState();
      after.push(copyStore(a.params));
      losses.push(r.losses);
    }
    const mean = weightedMean(after, weights);
    for (const [k, v] of mean) global.get(o.adapter).params.get(k)!.data.set(v.data);
    o.onRound?.(round, after, mean, losses);
  }
  return global;
}

/** Mean next-token loss of a model over packed rows (evaluation as training scores them). */
export async function blocksLoss(model: AdaptedModel, blocks: PackedBlocks, backend: Backend, batch = 8): Promise<{ loss: number; tokens: number }> {
  const rt = model.runtime(backend), T = blocks.seq;
  const rows: number[][] = [], targets: number[][] = [];
  for (let r = 0; r < blocks.rows; r += batch) {
    const b = batchAt(blocks, r, batch);
    for (let i = 0; i < Math.min(batch, blocks.rows - r); i++) {
      rows.push(Array.from(b.ids.subarray(i * T, i * T + T)));
      targets.push(Array.from(b.targets.subarray(i * T, i * T + T)));
    }
  }
  const res = await rt.evalTargets(rows, targets, { batch, seq: T });
  rt.dispose();
  return res;
}
