/**
 * LaMDA's gradual freezing of PMB (Fig. 1: PMB starts trainable, freezes direction by direction in the order
 * of the singular values, and is wholly frozen after t_i iterations). PMB's column j belongs to the j-th largest
 * singular value; columns freeze in that order, column j once step ≥ (j + 1)·t_i / r, so after step t
 * ⌊r·t/t_i⌋ columns are frozen (as the authors' code zeroes the gradient of B[:, :t]). A frozen column keeps
 * the value it had when it froze. From t_i on the whole of PMB is dropped from the trainable set, so its
 * backward work is skipped (Trainer.setTrainable); only S keeps training.
 */
import { type AdapterState, restoreArray, type TrainingController } from '../types.js';
import type { LamdaConfig } from './config.js';
import { isPma, lamdaKeys } from './layer.js';

/** Frozen PMB columns of a rank-r module after 1-based step t. */
export function frozenColumns(step: number, r: number, freezeSteps: number): number {
  return Math.min(r, Math.floor((r * step) / freezeSteps));
}

export function lamdaController(adapter: AdapterState<LamdaConfig>, o: { totalSteps: number }): TrainingController {
  const c = adapter.config;
  const ti = c.freezeSteps ?? Math.max(1, Math.round(0.3 * o.totalSteps));
  const keys = adapter.modules.map((m) => lamdaKeys(m.name).b);
  const ranks = keys.map((k) => adapter.params.get(k)!.shape[1]!);
  const outs = keys.map((k) => adapter.params.get(k)!.shape[0]!);
  // The value each frozen column keeps, per module.
  const kept = keys.map((_, i) => new Float32Array(outs[i]! * ranks[i]!));
  const frozen = keys.map(() => 0);
  let done = false;
  return {
    exportState() {
      const out = new Map<string, Float64Array>(keys.map((k, i) => [`kept/${k}`, Float64Array.from(kept[i]!)]));
      out.set('frozen', Float64Array.from(frozen));
      out.set('done', Float64Array.of(done ? 1 : 0));
      return out;
    },
    importState(state) {
      keys.forEach((k, i) => restoreArray(state, `kept/${k}`, kept[i]!, 'lamda'));
      const f = new Float64Array(keys.length), d = new Float64Array(1);
      restoreArray(state, 'frozen', f, 'lamda');
      restoreArray(state, 'done', d, 'lamda');
      f.forEach((v, i) => { frozen[i] = v; });
      done = d[0] === 1;
    },
    async afterUpdate(step, t) {
      if (done || ranks.every((r) => frozenColumns(step, r, ti) === 0)) return;
      const values = await t.values(keys);
      keys.forEach((key, i) => {
        const B = values.get(key)!, r = ranks[i]!, out = outs[i]!, now = frozenColumns(step, r, ti);
        for (let row = 0; row < out; row++) {
          // Columns frozen before this step return to their kept value; newly frozen ones keep this step's.
          for (let j = 0; j < frozen[i]!; j++) B[row * r + j] = kept[i]![row * r + j]!;
          for (let j = frozen[i]!; j < now; j++) kept[i]![row * r + j] = B[row * r + j]!;
        }
        frozen[i] = now;
        t.write(key, B);
      });
      if (step >= ti) {
        t.setTrainable([...adapter.params.keys()].filter((k) => !isPma(k) && !keys.includes(k)));
        done = true;
      }
    },
  };
}
