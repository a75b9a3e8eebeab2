/**
 * A base model with named adapters: add, enable, disable, merge, unmerge; the graph transform that
 * applies every active adapter; and the weights a backend needs. The base checkpoint is never modified:
 * merged and residual (PiSSA) weights are derived from it, so unmerging is exact.
 */
import type { Backend } from '../backends/backend.js';
import type { LlamaCheckpoint, NamedTensor } from '../formats/checkpoint.js';
import type { Graph, Tensor } from '../graph/graph.js';
import type { LinearContext, ModelHooks } from '../model/llama.js';
import { LlamaRuntime } from '../model/runtime.js';
import type { Session } from '../scheduler/session.js';
import { seededRandom } from '../util/random.js';
import { getMethod } from './registry.js';
import { llamaModules, selectTargets } from './targets.js';
import type { AdapterMethod, BuildContext, ModuleInfo, ParamStore, TargetConfig } from './types.js';

export interface Adapter {
  readonly name: string;
  readonly method: AdapterMethod<TargetConfig>;
  readonly config: TargetConfig;
  readonly modules: readonly ModuleInfo[];
  /** Current parameter values (the trainer writes back into these). */
  readonly params: ParamStore;
  /** The values at creation (methods whose saved form depends on them: PiSSA). */
  readonly initial: ParamStore;
  /** Base weights this adapter replaces while active (PiSSA's residual), by module name. */
  readonly baseOverrides: Map<string, Float32Array>;
  enabled: boolean;
  merged: boolean;
}

/** A graph parameter's name for an adapter parameter: `<adapter>/<key>`. */
export const adapterParamName = (adapter: string, key: string): string => `${adapter}/${key}`;

export class AdaptedModel {
  readonly adapters = new Map<string, Adapter>();
  readonly modules: readonly ModuleInfo[];

  constructor(readonly base: LlamaCheckpoint) {
    this.modules = llamaModules(base.config);
  }

  /** Add a fresh adapter. `config` uses the method's option names (camelCase). */
  addAdapter(name: string, methodName: string, config: Readonly<Record<string, unknown>>, o: { seed?: number } = {}): Adapter {
    const method = getMethod(methodName);
    const parsed = method.parseConfig(config);
    const modules = method.selectModules ? method.selectModules(parsed, this.modules) : selectTargets(parsed, this.modules);
    const random = seededRandom(o.seed ?? 0);
    const baseOverrides = new Map<string, Float32Array>();
    const params = method.createParams({
      config: parsed, modules, model: this.base.config, random,
      baseWeight: (m) => this.baseTensor(`${m}.weight`),
    });
    // Methods that rewrite the base (PiSSA) report it through createParams' store under `__base__/<module>`.
    for (const [k, v] of [...params]) {
      if (k.startsWith('__base__/')) { baseOverrides.set(k.slice(9), v.data); params.delete(k); }
    }
    const initial: ParamStore = new Map([...params].map(([k, v]) => [k, { shape: v.shape, data: Float32Array.from(v.data) }]));
    return this.attach({ name, method, config: parsed, modules, params, initial, baseOverrides, enabled: true, merged: false });
  }

  /** Attach an adapter whose parameters came from elsewhere (a PEFT folder). */
  attach(a: Adapter): Adapter {
    if (this.adapters.has(a.name)) throw new Error(`an adapter named '${a.name}' already exists`);
    this.adapters.set(a.name, a);
    return a;
  }

  get(name: string): Adapter {
    const a = this.adapters.get(name);
    if (!a) throw new Error(`no adapter named '${name}' (have: ${[...this.adapters.keys()].join(', ') || 'none'})`);
    return a;
  }

  enable(name: string): void { this.get(name).enabled = true; }
  disable(name: string): void { this.get(name).enabled = false; }

  merge(name: string): void {
    const a = this.get(name);
    if (!a.method.merge) throw new Error(`${a.method.name} adapters cannot be merged into the base weights`);
    a.merged = true;
  }
  unmerge(name: string): void { this.get(name).merged = false; }

  private baseTensor(name: string): NamedTensor {
    const t = this.base.tensors.get(name);
    if (!t) throw new Error(`${this.base.source}: no tensor ${name}`);
    return t;
  }

  /** The weights a graph should see: base, with active residuals and merged adapters applied. */
  effectiveCheckpoint(): LlamaCheckpoint {
    const tensors = new Map(this.base.tensors);
    for (const a of this.adapters.values()) {
      if (!a.enabled) continue;
      for (const [m, w] of a.baseOverrides) tensors.set(`${m}.weight`, { shape: tensors.get(`${m}.weight`)!.shape, data: w });
      if (!a.merged) continue;
      for (const m of a.modules) {
        const key = `${m.name}.weight`;
        tensors.set(key, { shape: tensors.get(key)!.shape, data: a.method.merge!(m, tensors.get(key)!, a.params, a.config) });
      }
    }
    return { ...this.base, tensors };
  }

  /**
   * The graph transform applying every enabled, unmerged adapter. Adapters on the same module chain:
   * each one's `base()` is the previous one's output.
   */
  hooks(o: { training: boolean; trainable?: string } = { training: false }): { hooks: ModelHooks; built: Map<Graph, Map<string, Tensor>> } {
    const built = new Map<Graph, Map<string, Tensor>>();
    const active = [...this.adapters.values()].filter((a) => a.enabled && !a.merged && a.method.linear);
    const byModule = new Map<string, { a: Adapter; m: ModuleInfo }[]>();
    for (const a of active) for (const m of a.modules) {
      const list = byModule.get(m.name) ?? [];
      list.push({ a, m });
      byModule.set(m.name, list);
    }
    let site = 0;
    const linear = (ctx: LinearContext): Tensor => {
      const list = byModule.get(ctx.name);
      if (!list) return ctx.base();
      const g = ctx.graph;
      const params = built.get(g) ?? new Map<string, Tensor>();
      built.set(g, params);
      let current: LinearContext = ctx;
      let out = ctx.base();
      for (const { a, m } of list) {
        const b: BuildContext = {
          graph: g,
          training: o.training,
          ...(o.training ? { seed: g.byName('dropout_seed') ?? g.input('dropout_seed', [1], 'i32') } : {}),
          param: (key) => {
            const name = adapterParamName(a.name, key);
            let t = params.get(name);
            if (!t) {
              const p = a.params.get(key);
              if (!p) throw new Error(`adapter '${a.name}' has no parameter ${key}`);
              t = g.param(name, p.shape);
              params.set(name, t);
            }
            return t;
          },
          nextSite: () => site++,
        };
        const prev = current;
        out = a.method.linear!(prev, m, a.config, b);
        const result = out;
        current = { ...prev, base: () => result };
      }
      return out;
    };
    return { hooks: { linear }, built };
  }

  /** Upload every adapter parameter a session's graph declares. */
  uploadAdapterParams(s: Session): void {
    for (const v of s.graph.values) {
      if (v.kind !== 'param' || !v.name?.includes('/')) continue;
      const [adapter, key] = [v.name.slice(0, v.name.indexOf('/')), v.name.slice(v.name.indexOf('/') + 1)];
      const p = this.adapters.get(adapter)?.params.get(key);
      if (!p) throw new Error(`no parameter ${key} in adapter '${adapter}'`);
      s.set(v.id, p.data);
    }
  }

  /** A runtime for generation and evaluation with the adapters as they are now. */
  runtime(backend: Backend): LlamaRuntime {
    const { hooks } = this.hooks({ training: false });
    return new LlamaRuntime(this.effectiveCheckpoint(), backend, hooks, (s) => this.uploadAdapterParams(s));
  }

  /** Trainable parameter count of one adapter. */
  parameterCount(name: string): number {
    let n = 0;
    for (const p of this.get(name).params.values()) n += p.data.length;
    return n;
  }
}
