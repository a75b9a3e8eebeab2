/**
 * Kernel profiles of a step: what each op cost, and how much of the step's wall time the kernels
 * account for (the rest is host work: scheduling, submission, readback, JavaScript).
 */
import type { StepTime } from '../backends/backend.js';

export interface OpTime {
  readonly op: string;
  readonly calls: number;
  readonly ms: number;
}

export interface StepProfile {
  /** The backend's description (adapter, threads). */
  readonly backend: string;
  /** 'gpu': timestamp queries; 'host': the host clock around synchronous kernels. */
  readonly clock: 'gpu' | 'host';
  /** Every kernel of the profiled step, in the order it ran. */
  readonly kernels: readonly StepTime[];
  /** Their sum. */
  readonly kernelMs: number;
  /** A typical unprofiled step's wall time (the median), or null when no other step was timed. */
  readonly wallMs: number | null;
  /** Time per op, largest first. */
  readonly byOp: readonly OpTime[];
}

export function summarizeProfile(backend: string, clock: StepProfile['clock'], kernels: readonly StepTime[], wallMs: number | null): StepProfile {
  const ops = new Map<string, { calls: number; ms: number }>();
  let kernelMs = 0;
  for (const k of kernels) {
    const e = ops.get(k.op) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += k.ms;
    ops.set(k.op, e);
    kernelMs += k.ms;
  }
  const byOp = [...ops].map(([op, e]) => ({ op, ...e })).sort((a, b) => b.ms - a.ms);
  return { backend, clock, kernels, kernelMs, wallMs, byOp };
}

/** The median of some step times, leaving out the first (planning, uploads, first-use compilation) when others exist. */
export function typicalStepMs(stepMs: readonly number[]): number | null {
  const xs = (stepMs.length > 1 ? stepMs.slice(1) : stepMs).slice().sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mid = xs.length >> 1;
  return xs.length % 2 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2;
}

/** A table for people: the share of the step in kernels, then time per op. */
export function formatProfile(p: StepProfile, title = 'profile'): string {
  const lines: string[] = [];
  const clock = p.clock === 'gpu' ? 'GPU timestamps' : 'host clock';
  const share = p.wallMs ? ` of a ${p.wallMs.toFixed(2)} ms step (${((100 * p.kernelMs) / p.wallMs).toFixed(1)}% in kernels)` : '';
  lines.push(`${title} (${p.backend}; ${clock}): ${p.kernels.length} kernels, ${p.kernelMs.toFixed(2)} ms${share}`);
  lines.push('  op                      calls        ms   share');
  for (const o of p.byOp) {
    const pct = p.kernelMs > 0 ? (100 * o.ms) / p.kernelMs : 0;
    lines.push(`  ${o.op.padEnd(22)} ${String(o.calls).padStart(6)} ${o.ms.toFixed(3).padStart(9)} ${pct.toFixed(1).padStart(6)}%`);
  }
  return lines.join('\n');
}
