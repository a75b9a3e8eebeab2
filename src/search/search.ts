/**
 * Configuration search in the manner of AutoPEFT: candidates drawn from method × rank × targets × layers,
 * each trained briefly and scored on held-out loss and trainable parameters; successive halving gives the
 * best of them more steps; the result is the Pareto front over every candidate's last evaluation and the
 * front point chosen by `chooseFromFront`.
 */
import { AdaptedModel } from '../adapters/adapted-model.js';
import type { Backend } from '../backends/backend.js';
import type { PackedBlocks } from '../data/dataset.js';
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import { fineTune } from '../train/finetune.js';
import { candidatesForBudget, type HalvingOptions, planSteps, type RungResult, rungPlan, successiveHalving } from './halving.js';
import { chooseFromFront, type Objectives, paretoFront } from './pareto.js';
import { type Candidate, candidateConfig, sampleCandidates, searchGrid, type SearchSpace } from './space.js';

export interface SearchOptions extends HalvingOptions {
  space: SearchSpace;
  /** Total optimizer steps over every run of every rung. */
  budget: number;
  seed: number;
  batch: number;
  /** Peak learning rate (default: each method's own default). */
  lr?: number;
  /** The chosen point: fewest parameters within this relative loss of the front's best (default 0.01). */
  tolerance?: number;
  data: PackedBlocks;
  evalData: PackedBlocks;
  backend: Backend;
  onRung?: (r: RungResult<Candidate>, plan: { candidates: number; steps: number }[]) => void;
}

export interface SearchPoint extends Objectives {
  candidate: Candidate;
  /** Steps of the run that produced this point (the last rung the candidate reached). */
  steps: number;
  rung: number;
}

export interface SearchResult {
  grid: number;
  plan: { candidates: number; steps: number }[];
  stepsUsed: number;
  rungs: RungResult<Candidate>[];
  /** One point per candidate: its last evaluation. */
  points: SearchPoint[];
  /** Indices into `points`. */
  front: number[];
  chosen: number;
  /** The chosen candidate's adapter as trained in its last run (adapter name 'default'). */
  chosenModel: AdaptedModel;
}

/** What is wrong with a search before any work: an empty space, or a budget too small for one plan. */
export function planSearch(space: SearchSpace, budget: number, o: HalvingOptions): { grid: Candidate[]; n: number } {
  for (const [k, v] of Object.entries(space)) if (!(v as unknown[]).length) throw new RangeError(`search: the ${k} list is empty`);
  const grid = searchGrid(space);
  const n = candidatesForBudget(budget, grid.length, o);
  if (n === undefined) {
    const least = Math.min(2, grid.length);
    const first = rungPlan(least, o)[0]!;
    throw new RangeError(`search: a budget of ${budget} steps is too small: the first rung alone needs ${first.candidates} candidates × ${first.steps} steps and the ${o.rungs} rungs ${planSteps(rungPlan(least, o))} (raise the budget, or lower the minimum steps or the rungs)`);
  }
  return { grid, n };
}

export async function searchConfigurations(model: LlamaCheckpoint, o: SearchOptions): Promise<SearchResult> {
  const { grid, n } = planSearch(o.space, o.budget, o);
  const candidates = sampleCandidates(grid, n, o.seed);
  const plan = rungPlan(n, o);
  const latest = new Map<number, { point: SearchPoint; model: AdaptedModel }>();
  let rungIndex = 0;
  const rungs = await successiveHalving(candidates, o, async (c, steps, index) => {
    // Every run starts from the same seeded initialisation, so a candidate's result depends only on it and its steps.
    const m = new AdaptedModel(model);
    m.addAdapter('default', c.method, candidateConfig(c), { seed: o.seed });
    const params = m.parameterCount('default');
    const { evals } = await fineTune({
      model: m, adapter: 'default', backend: o.backend, data: o.data, evalData: o.evalData, steps, batch: o.batch,
      seed: o.seed, maxGradNorm: 1, ...(o.lr !== undefined ? { lr: o.lr } : {}),
    });
    const loss = evals[evals.length - 1]!.loss;
    latest.set(index, { point: { candidate: c, loss, params, steps, rung: rungIndex }, model: m });
    return { loss, params };
  }, (r) => { o.onRung?.(r, plan); rungIndex++; });
  const order = [...latest.keys()].sort((a, b) => a - b);
  const points = order.map((i) => latest.get(i)!.point);
  const front = paretoFront(points);
  const chosen = chooseFromFront(points, front, o.tolerance ?? 0.01);
  return { grid: grid.length, plan, stepsUsed: planSteps(plan), rungs, points, front, chosen, chosenModel: latest.get(order[chosen]!)!.model };
}
