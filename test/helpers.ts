/** Shared test helpers: seeded random data, comparisons with stated tolerances, and a float64 finite-difference gradient check. */
import type { Backend, HostArray } from '../src/backends/backend.js';
import { createJsBackend } from '../src/backends/js/index.js';
import { gradients } from '../src/graph/autodiff.js';
import { Graph, type Tensor } from '../src/graph/graph.js';
import { numel } from '../src/graph/types.js';
import { Session } from '../src/scheduler/session.js';
import { type LlamaCheckpoint, type NamedTensor, tensorF32 } from '../src/formats/checkpoint.js';
import { type CompactDType, quantize } from '../src/quant/index.js';

export { seededRandom as rng } from '../src/util/random.js';
import { gaussian, seededRandom } from '../src/util/random.js';

export function randn(n: number, seed: number, scale = 1): Float64Array {
  const r = seededRandom(seed);
  return Float64Array.from({ length: n }, () => gaussian(r) * scale);
}

/** Resolve to the error a promise rejects with; fail the test if it resolves. */
export async function rejection(p: Promise<unknown>): Promise<Error> {
  try { await p; } catch (e) { return e as Error; }
  throw new Error('expected a rejection, but the promise resolved');
}

export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let scale = 0, err = 0;
  for (let i = 0; i < a.length; i++) { scale = Math.max(scale, Math.abs(b[i]!)); err = Math.max(err, Math.abs(a[i]! - b[i]!)); }
  return err / Math.max(scale, 1e-30);
}

export interface LeafSpec { name: string; shape: number[]; kind?: 'input' | 'param'; dtype?: 'f32' | 'i32'; data?: ArrayLike<number>; scale?: number; offset?: number }

/** Build a graph from leaves and a body; random data for f32 leaves unless given. */
export function buildGraph(leaves: LeafSpec[], body: (ts: Tensor[]) => Tensor, seed = 1): { g: Graph; ts: Tensor[]; out: Tensor; data: HostArray[] } {
  const g = new Graph();
  const ts = leaves.map((l) => (l.kind === 'input' || l.dtype === 'i32' ? g.input(l.name, l.shape, l.dtype ?? 'f32') : g.param(l.name, l.shape)));
  const data = leaves.map((l, i) => {
    if (l.dtype === 'i32') return Int32Array.from(l.data ?? []);
    const d = l.data ? Float64Array.from(l.data) : randn(numel(l.shape), seed * 97 + i, l.scale ?? 1);
    if (l.offset) for (let k = 0; k < d.length; k++) d[k]! += l.offset;
    return d;
  });
  const out = body(ts);
  g.markOutput(out);
  return { g, ts, out, data };
}

async function runOnce(g: Graph, backend: Backend, ts: Tensor[], data: HostArray[], read: Tensor[]): Promise<HostArray[]> {
  const s = await Session.create(g, backend);
  ts.forEach((t, i) => s.set(t, t.dtype === 'i32' ? data[i]! : toPrecision(data[i]!, backend)));
  await s.run();
  const out = await s.getMany(read);
  s.dispose();
  return out;
}

function toPrecision(d: HostArray, backend: Backend): HostArray {
  return backend.describe().includes('f64') ? Float64Array.from(d) : Float32Array.from(d);
}

/**
 * Check autodiff gradients of sum(out · w) (w a fixed random weighting) against central finite
 * differences, all in float64 on the js backend. Returns the worst relative error over all f32 leaves.
 * Throws when a leaf's analytic gradient is all zero: such a check could not fail.
 */
export async function gradCheck(leaves: LeafSpec[], body: (ts: Tensor[]) => Tensor, opts: { eps?: number; seed?: number; maxProbes?: number } = {}): Promise<number> {
  const { g, ts, out, data } = buildGraph(leaves, body, opts.seed ?? 1);
  const weight = g.input('__w', out.shape);
  const loss = g.apply1('sum', [g.apply1('mul', [out, weight])], { axes: null, keepDims: false });
  const wrt = ts.filter((t) => t.dtype === 'f32');
  const grads = gradients(loss, wrt);
  g.markOutput(loss);
  const backend = createJsBackend({ precision: 'f64' });
  const wData = randn(numel(out.shape), 4242);
  const allT = [...ts, weight], allD = [...data, wData];
  const analytic = await runOnce(g, backend, allT, allD, wrt.map((t) => grads.get(t)));
  // Finite differences of a function that ignores a leaf are zero too, so an all-zero gradient would
  // pass the comparison while checking nothing (a leaf cut off from the output, or initialised so that
  // its gradient vanishes, like LoRA's A beside a zero B).
  for (const [wi, t] of wrt.entries()) {
    if (analytic[wi]!.every((v) => v === 0)) throw new Error(`gradient check of ${t}: the analytic gradient is all zero, so there is nothing to check; give the leaves values that make it non-zero`);
  }
  const s = await Session.create(g, backend);
  allT.forEach((t, i) => s.set(t, allD[i]!));
  const lossAt = async (): Promise<number> => { await s.run(); return (await s.get(loss))[0]!; };
  const eps = opts.eps ?? 1e-6;
  let worst = 0;
  for (const [wi, t] of wrt.entries()) {
    const idx = ts.indexOf(t);
    const base = Float64Array.from(data[idx]!);
    const probes = pickProbes(base.length, opts.maxProbes ?? 24, 7 + wi);
    const numeric = new Float64Array(probes.length), an = new Float64Array(probes.length);
    for (const [pi, k] of probes.entries()) {
      const x = Float64Array.from(base);
      x[k] = base[k]! + eps; s.set(t, x);
      const up = await lossAt();
      x[k] = base[k]! - eps; s.set(t, x);
      const down = await lossAt();
      numeric[pi] = (up - down) / (2 * eps);
      an[pi] = analytic[wi]![k]!;
    }
    s.set(t, base);
    const e = maxRelErr(an, numeric);
    if (!(e <= worst)) worst = Number.isNaN(e) ? NaN : Math.max(worst, e);
    if (Number.isNaN(worst)) throw new Error(`gradient check of ${t}: NaN in the gradient`);
  }
  s.dispose();
  return worst;
}

function pickProbes(n: number, max: number, seed: number): number[] {
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  const r = seededRandom(seed), set = new Set<number>();
  while (set.size < max) set.add(Math.floor(r() * n));
  return [...set];
}

export { runOnce };

/**
 * A copy whose 2-D weights are stored as `dtype` (quantised from the float32 file); a q type needs rows of
 * whole 32-blocks, so weights whose rows are not (stories260K's down_proj, FFN 172) are f16, as the loader does.
 */
export function compactCopy(ckpt: LlamaCheckpoint, dtype: CompactDType): LlamaCheckpoint {
  const tensors = new Map<string, NamedTensor>();
  for (const [name, t] of ckpt.tensors) {
    const d = dtype.startsWith('q') && t.shape[t.shape.length - 1]! % 32 !== 0 ? 'f16' : dtype;
    tensors.set(name, t.shape.length === 2 ? { shape: t.shape, dtype: d, bytes: quantize(d, tensorF32(t)) } : t);
  }
  return { ...ckpt, tensors };
}
