/**
 * Falling back from one backend to another mid-run. `auto` wraps a WebGPU backend in this: when a
 * device is lost or a kernel fails, the plan is loaded on the fallback backend (wasm), every value the
 * host wrote is written again, and the failed call is retried there, with a warning. Parameters and
 * optimizer moments change on the device (AdamW), so their host copies are kept current: each read()
 * batch also reads them and the gradients, and each AdamW update is mirrored on the host copies. A
 * fallback then resumes from the last completed step (from the start when it happens in the first step).
 */
import type { AdamWHyper, Backend, Executable, ExecutionPlan, HostArray, StepTime, WeightSources } from '../backends/backend.js';
import { adamw as hostAdamw } from '../backends/js/kernels/adamw.js';

export function withFallback(primary: Backend, fallback: () => Promise<Backend>, warn: (message: string) => void): Backend {
  let second: Backend | undefined;
  const secondary = async (): Promise<Backend> => (second ??= await fallback());
  return {
    name: primary.name,
    describe: () => (second ? `${second.describe()} (fell back from ${primary.describe()})` : primary.describe()),
    async load(plan, weights) {
      try {
        return new FallbackExecutable(plan, await primary.load(plan, weights), secondary, warn, weights);
      } catch (e) {
        warn(`${primary.describe()} could not load the graph (${(e as Error).message}); using the fallback backend`);
        return (await secondary()).load(plan, weights);
      }
    },
    dispose() { primary.dispose(); second?.dispose(); },
  };
}

class FallbackExecutable implements Executable {
  private readonly replay = new Map<number, HostArray>();
  /** AdamW slots seen so far: param → its grad, m, v. */
  private readonly slots = new Map<number, { grad: number; m: number; v: number }>();
  /** Host copies this wrapper owns (read back), safe to update in place; gradients from the last read. */
  private readonly owned = new Map<number, Float32Array | Float64Array>();
  private fellBack = false;

  constructor(private readonly plan: ExecutionPlan, private exe: Executable, private readonly secondary: () => Promise<Backend>, private readonly warn: (m: string) => void, private readonly weights?: WeightSources) {}

  get backend() { return this.exe.backend; }

  write(value: number, data: HostArray): void {
    this.exe.write(value, data);
    this.replay.set(value, data);
  }

  private async guard<T>(what: string, fn: () => Promise<T> | T): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (this.fellBack) throw e;
      this.fellBack = true;
      const backend = await this.secondary();
      this.warn(`${this.exe.backend} failed during ${what} (${(e as Error).message.split('\n')[0]}); continuing on ${backend.describe()}`);
      try { this.exe.dispose(); } catch { /* the device is gone already */ }
      this.exe = await backend.load(this.plan, this.weights);
      for (const [v, data] of this.replay) this.exe.write(v, data);
      return fn();
    }
  }

  run(skip?: Uint8Array): Promise<void> { return this.guard('a step', () => this.exe.run(skip)); }

  async read(values: readonly number[]): Promise<HostArray[]> {
    const extra = [...this.slots].flatMap(([p, s]) => [p, s.m, s.v, s.grad]);
    const all = await this.guard('a read-back', () => this.exe.read([...values, ...extra]));
    extra.forEach((v, i) => this.owned.set(v, all[values.length + i] as Float32Array));
    for (const [p, s] of this.slots) for (const v of [p, s.m, s.v]) this.replay.set(v, this.owned.get(v)!);
    return all.slice(0, values.length);
  }

  adamw(param: number, grad: number, m: number, v: number, hyper: AdamWHyper): void {
    this.exe.adamw(param, grad, m, v, hyper);
    const [hp, hg, hm, hv] = [param, grad, m, v].map((x) => this.owned.get(x));
    if (hp && hg && hm && hv) hostAdamw(hp, hg, hm, hv, hyper);
    this.slots.set(param, { grad, m, v });
  }

  beginProfile(): void { this.exe.beginProfile(); }
  /** A fallback while profiling loses the entries recorded before it (the failed executable is gone). */
  endProfile(): Promise<StepTime[] | null> { return this.guard('profiling', () => this.exe.endProfile()); }

  dispose(): void { this.exe.dispose(); }
}
