/**
 * GreenTrainer (adaptive backpropagation): every N steps, one probe step measures how much each base tensor's
 * update lowers the loss, and a dynamic program picks the tensors that lower it most within a fraction ρ of
 * full fine-tuning's operations; those train until the next probe. Costs come from the training graph
 * (costs.ts), the selection from select.ts.
 */
import type { UpdaterEntry } from '../registry-types.js';
import type { Updater, UpdaterContext } from '../types.js';
import { type BackwardCosts, backwardCosts, selectionCost } from './costs.js';
import { selectTensors } from './select.js';

export interface GreenTrainerOptions {
  /** The step's cost table (backwardCosts for the model and batch shape the run uses). */
  costs: BackwardCosts;
  /** ρ: a selected step's operations (forward + backward) over a full fine-tuning step's, in (0, 1] (default 0.5). */
  rho?: number;
  /** N: steps per selection window; the first step of each window is the probe (default 20, at least 2). */
  interval?: number;
  /** Told of each selection: the step it starts at, every probed tensor's importance and the tensors chosen. */
  onSelect?(e: GreenSelection): void;
}

export interface GreenSelection {
  /** The first step (1-based) the selection trains. */
  step: number;
  /** −Σ g ⊙ Δw of each probed tensor. */
  importance: ReadonlyMap<string, number>;
  /** The tensors chosen, output first. */
  selected: string[];
  /** A selected step's operations over a full step's. */
  opsFraction: number;
}

/** Floor of the backward budget, as a fraction of the full backward pass, when ρ leaves less (or nothing) after the forward pass. */
export const MIN_BACKWARD_FRACTION = 0.05;

/**
 * The backward pass's share ρ_b of its full cost that keeps a whole step within ρ of a full step:
 * F + ρ_b·B = ρ·(F + B), floored at MIN_BACKWARD_FRACTION.
 */
export function backwardFraction(rho: number, forward: number, backward: number): number {
  return Math.max(MIN_BACKWARD_FRACTION, (rho * (forward + backward) - forward) / backward);
}

export function greenTrainerUpdater(o: GreenTrainerOptions): Updater {
  const rho = o.rho ?? 0.5, interval = o.interval ?? 20, { costs } = o;
  if (!(Number.isFinite(rho) && rho > 0 && rho <= 1)) throw new RangeError(`greentrainer: rho must be in (0, 1] (got ${rho})`);
  if (!(Number.isInteger(interval) && interval >= 2)) throw new RangeError(`greentrainer: interval must be an integer ≥ 2: its first step probes, the others train the selection (got ${interval})`);
  const N = costs.tensors.length, F = costs.forward, B = costs.backward, full = F + B;
  const rhoB = backwardFraction(rho, F, B), budget = rhoB * B;
  const dw = costs.tensors.map((t) => t.dw), dy = costs.tensors.map((t) => t.dy);
  const index = new Map(costs.tensors.map((t, i) => [t.name, i]));
  // The tensors that fit the budget on their own: only they can ever be selected, so only they are probed.
  let probe: number[] = [];
  {
    let reach = 0;
    for (let k = 0; k < N; k++) { reach += dy[k]!; if (reach + dw[k]! <= budget) probe.push(k); }
  }
  const names = (ix: Iterable<number>): Set<string> => new Set([...ix].map((i) => costs.tensors[i]!.name));
  const indices = (set: Iterable<string>): number[] => [...set].map((n) => index.get(n)!);
  // Σ g·w per probed tensor before the update; −(Σ g·w after − Σ g·w before) = −Σ g ⊙ Δw.
  let before = new Map<string, number>();
  let selection: number[] = [], selections = 0, ops = 0, steps = 0;
  // Step timing: the gap from one afterStep to the next, for steps that follow no re-plan.
  let lastEnd = NaN, replanned = true;
  const selectedMs: number[] = [];
  const isProbe = (stepIndex: number): boolean => stepIndex % interval === 0;

  const dotGW = async (ctx: UpdaterContext, name: string): Promise<number> => {
    const g = (await ctx.gradients([name])).get(name)!, w = (await ctx.values([name])).get(name)!;
    let s = 0;
    for (let i = 0; i < g.length; i++) s += g[i]! * w[i]!;
    return s;
  };
  const stepOps = (set: readonly number[]): number => F + selectionCost(costs, set);
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

  return {
    method: 'greentrainer',
    // A tensor that leaves the selection and comes back resumes its moments, as one AdamW over every tensor would.
    keepMoments: true,
    initialTrainable(ctx) {
      const known = new Set(ctx.tensors.map((t) => t.name));
      for (const t of costs.tensors) if (!known.has(t.name)) throw new Error(`greentrainer: the cost table names ${t.name}, which the model does not have (was it built for another model?)`);
      for (const t of ctx.tensors) if (!index.has(t.name)) throw new Error(`greentrainer: the cost table has no entry for ${t.name} (was it built for another model?)`);
      if (probe.length === 0) {
        // Not even one tensor fits: train the cheapest alone, and say so.
        let best = 0, bestCost = Infinity;
        for (let k = 0; k < N; k++) { const c = selectionCost(costs, [k]); if (c < bestCost) { bestCost = c; best = k; } }
        probe = [best];
        ctx.log(`greentrainer: no tensor fits ρ = ${rho} (a backward budget of ${pct(rhoB)}); the cheapest, ${costs.tensors[best]!.name}, trains alone at ${pct(stepOps(probe) / full)} of a full step`);
      }
      ctx.log(`greentrainer: a full step is ${F.toExponential(3)} forward + ${B.toExponential(3)} backward operations; ρ = ${rho} leaves the backward pass ${pct(rhoB)}; ${probe.length} of ${N} tensors fit it (probed every ${interval} steps)`);
      return names(probe);
    },
    async beforeUpdate(ctx) {
      const current = indices(ctx.trainable);
      ops += stepOps(current); steps++;
      if (!isProbe(ctx.step)) return;
      before = new Map();
      for (const n of ctx.trainable) before.set(n, await dotGW(ctx, n));
    },
    async afterStep(ctx) {
      const now = performance.now();
      const done = ctx.step - 1; // index of the step that just ran
      if (!replanned && !Number.isNaN(lastEnd) && !isProbe(done)) selectedMs.push(now - lastEnd);
      let next: Set<string> | undefined;
      if (isProbe(done)) {
        const importance = new Array<number>(N).fill(0);
        for (const [n, s0] of before) importance[index.get(n)!] = -((await dotGW(ctx, n)) - s0);
        const chosen = selectTensors({ dw, dy, importance, budget });
        // The probe set always fits on its own, so a selection exists; the fallback covers a budget nothing fits.
        selection = chosen?.selected ?? probe;
        selections++;
        const deepest = costs.tensors[Math.max(...selection)]!.name;
        ctx.log(`greentrainer: step ${ctx.step + 1}: ${selection.length} tensors train down to ${deepest}, ${pct(stepOps(selection) / full)} of a full step's operations (${pct(1 - stepOps(selection) / full)} saved)`);
        next = names(selection);
        o.onSelect?.({
          step: ctx.step + 1, selected: [...next], opsFraction: stepOps(selection) / full,
          importance: new Map([...before.keys()].map((n) => [n, importance[index.get(n)!]!])),
        });
      } else if (isProbe(ctx.step)) next = names(probe);
      replanned = next !== undefined && !sameSet(next, ctx.trainable);
      lastEnd = performance.now();
      return next;
    },
    summary() {
      const sorted = [...selectedMs].sort((a, b) => a - b);
      const selectedOps = selection.length ? stepOps(selection) / full : NaN;
      return {
        greenRho: rho, greenInterval: interval, greenBackwardFraction: rhoB, greenProbed: probe.length, greenSelections: selections,
        greenSelected: selection.length,
        /** A selected step's operations over a full fine-tuning step's (forward + backward). */
        greenSelectedOpsFraction: selectedOps,
        /** The probe step's. */
        greenProbeOpsFraction: stepOps(probe) / full,
        /** Over the whole run, probe steps included: 1 − operations done / a full step's × steps. */
        greenOpsSaved: steps ? 1 - ops / (steps * full) : 0,
        // Median measured time of a selected step that followed no re-plan (none with an interval of 2, whose
        // every selected step comes right after a switch; absent then).
        ...(sorted.length ? { greenSelectedStepMs: sorted[Math.floor(sorted.length / 2)]! } : {}),
      };
    },
  };
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

export const GREENTRAINER: UpdaterEntry = {
  help: 'GreenTrainer: every N steps a probe step rates each tensor by −Σ g⊙Δw and a DP picks the best set within ρ of a full step\'s operations',
  options: {
    'green-rho': { type: 'number', help: 'ρ: a step\'s operations (forward + backward, counted on the training graph) over full fine-tuning\'s; the backward share is floored at 5%', default: 0.5, range: { above: 0, max: 1 } },
    'green-interval': { type: 'int', help: 'N: steps per selection; the first step of each N is the probe that rates every tensor within reach', default: 20, range: { integer: true, min: 2 } },
  },
  create: (v, _model, run) => {
    if (!run) throw new Error('greentrainer: needs the run\'s model configuration and batch shape to count the training graph');
    return greenTrainerUpdater({ costs: backwardCosts(run.config, run.batch, run.seq), rho: Number(v['green-rho'] ?? 0.5), interval: Number(v['green-interval'] ?? 20) });
  },
};
