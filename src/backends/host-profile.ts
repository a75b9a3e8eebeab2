/**
 * Profiling on backends whose kernels run synchronously on the calling thread (js, wasm: the wasm
 * worker pool's caller waits for its workers), so the host clock around a kernel is its time.
 */
import type { ExecutionPlan, PlanStep, StepTime } from './backend.js';

export class HostProfiler {
  private entries: StepTime[] | null = null;

  begin(): void { this.entries = []; }

  /** Run `fn`, timing it when profiling. */
  time(op: string, name: string, fn: () => void): void {
    const entries = this.entries;
    if (!entries) { fn(); return; }
    const t0 = performance.now();
    fn();
    entries.push({ op, name, ms: performance.now() - t0 });
  }

  end(): StepTime[] {
    const e = this.entries ?? [];
    this.entries = null;
    return e;
  }
}

/** The module name of a plan step's node, or ''. */
export function stepName(plan: ExecutionPlan, step: PlanStep): string {
  return plan.nodes[step.node]?.name ?? '';
}

/** The name of a value (a parameter, for AdamW updates), or ''. */
export function valueName(plan: ExecutionPlan, value: number): string {
  return plan.values[value]?.name ?? '';
}
