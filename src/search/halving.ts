/**
 * Successive halving (Jamieson & Talwalkar, 2016; one bracket of Hyperband, Li et al., 2018): every candidate
 * trains a few steps, the best 1/η go on to η times as many steps, and so on for a fixed number of rungs.
 * "Best" is multi-objective here: Pareto layer over (held-out loss, trainable parameters), then loss.
 */
import { multiObjectiveOrder, type Objectives } from './pareto.js';

export interface HalvingOptions {
  /** Optimizer steps of a first-rung run. */
  minSteps: number;
  /** Keep 1/eta of the candidates after each rung; the next rung's runs take eta times the steps. */
  eta: number;
  /** Number of rungs (the last rung's survivors are not halved again). */
  rungs: number;
}

export interface Rung {
  /** Candidates trained in this rung. */
  candidates: number;
  /** Steps each of them trains (from the start: a rung's run does not continue the previous rung's). */
  steps: number;
}

/** Candidates in each rung for `n` first-rung candidates: ⌊n/η⌋ survive each rung, at least 1. */
export function rungPlan(n: number, o: HalvingOptions): Rung[] {
  const plan: Rung[] = [];
  let count = n, steps = o.minSteps;
  for (let k = 0; k < o.rungs; k++) {
    plan.push({ candidates: count, steps });
    count = Math.max(1, Math.floor(count / o.eta));
    steps *= o.eta;
  }
  return plan;
}

/** Total optimizer steps of a plan: what --budget counts. */
export function planSteps(plan: readonly Rung[]): number {
  return plan.reduce((s, r) => s + r.candidates * r.steps, 0);
}

/**
 * The most first-rung candidates (at most `available`, at least 2) whose whole plan fits in `budget`
 * optimizer steps; undefined when not even 2 candidates (or the single one available) fit.
 */
export function candidatesForBudget(budget: number, available: number, o: HalvingOptions): number | undefined {
  const least = Math.min(2, available);
  if (planSteps(rungPlan(least, o)) > budget) return undefined;
  let n = least;
  while (n < available && planSteps(rungPlan(n + 1, o)) <= budget) n++;
  return n;
}

export interface RungResult<C> {
  rung: number;
  steps: number;
  /** Every candidate trained in this rung with its result, in the order they ran. */
  evaluated: { candidate: C; index: number; result: Objectives }[];
  /** Indices (into the candidate list) kept for the next rung, best first. */
  kept: number[];
}

/**
 * Run the plan: evaluate(candidate, steps) trains one candidate for `steps` steps and returns its held-out
 * loss and trainable parameters. Returns each rung's results; each candidate's last result is its point.
 */
export async function successiveHalving<C>(
  candidates: readonly C[],
  o: HalvingOptions,
  evaluate: (candidate: C, steps: number, index: number) => Promise<Objectives>,
  onRung?: (r: RungResult<C>) => void,
): Promise<RungResult<C>[]> {
  const plan = rungPlan(candidates.length, o);
  let alive = candidates.map((_, i) => i);
  const out: RungResult<C>[] = [];
  for (let k = 0; k < plan.length; k++) {
    const { steps } = plan[k]!;
    const evaluated: RungResult<C>['evaluated'] = [];
    for (const i of alive) evaluated.push({ candidate: candidates[i]!, index: i, result: await evaluate(candidates[i]!, steps, i) });
    const order = multiObjectiveOrder(evaluated.map((e) => e.result));
    const keep = k + 1 < plan.length ? plan[k + 1]!.candidates : evaluated.length;
    const kept = order.slice(0, keep).map((j) => evaluated[j]!.index);
    const r = { rung: k, steps, evaluated, kept };
    out.push(r);
    onRung?.(r);
    alive = kept;
  }
  return out;
}
