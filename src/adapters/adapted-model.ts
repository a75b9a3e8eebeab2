/**
 * A base model with named adapters: add, enable, disable, merge, unmerge; the graph transform that
 * applies every active adapter; and the weights a backend needs. The base checkpoint is never modified:
 * merged and residual (PiSSA) weights are derived from it, so unmerging is exact.
 */
import type { Backend } from '../backends/backend.js';
import { type LlamaCheckpoint, type NamedTensor, tensorF32 } from '../formats/checkpoint.js';
import * as F from '../graph/api.js';
import type { Graph, Tensor } from '../graph/graph.js';
import type { LinearContext, ModelHooks, SublayerContext } from '../model/llama.js';
import { hostKeyValues, hostLinearInputs } from '../model/host-forward.js';
import { LlamaRuntime } from '../model/runtime.js';
import type { Session } from '../scheduler/session.js';
import { seededRandom } from '../util/random.js';
import { getMethod } from './registry.js';
import { modelModules, selectTargets } from './targets.js';
import { checkRowAdapters, MIXED_BASE, mixRows, ROW_SELECTOR_PARAM, rowMask, rowSelectorTable } from './mixed/rows.js';
import type { AdapterMethod, BuildContext, InitSample, ModuleInfo, ParamStore, PeftExtras, TargetConfig, TrainingController } from './types.js';

export interface Adapter {
  readonly name: string;
  readonly method: AdapterMethod<TargetConfig>;
  readonly config: TargetConfig;
  readonly modules: readonly ModuleInfo[];
  /** Current parameter values (the trainer writes back into these). */
  readonly params: ParamStore;
  /** The values at creation (methods whose saved form depends on them: PiSSA). */
  readonly initial: ParamStore;
  /**
   * Base tensors this adapter replaces while active, by tensor name (`<module>.weight`): PiSSA's residual;
   * from a PEFT folder, whole modules (modules_to_save), token rows (trainable_token_indices) and saved base layers.
   */
  readonly baseOverrides: Map<string, NamedTensor>;
  /** What of a PEFT folder lives in baseOverrides, to be saved back the same way. */
  readonly peftExtras?: PeftExtras;
  enabled: boolean;
  merged: boolean;
}

/** A graph parameter's name for an adapter parameter: `<adapter>/<key>`. */
export const adapterParamName = (adapter: string, key: string): string => `${adapter}/${key}`;

export class AdaptedModel {
  readonly adapters = new Map<string, Adapter>();
  readonly modules: readonly ModuleInfo[];
  /**
   * Mixed-adapter batches (src/adapters/mixed): while set, graphs apply these adapters per row, each row
   * choosing one of them or the base by its row id (`rowIds`), instead of every enabled adapter to every row.
   */
  private rowAdapters?: readonly Adapter[];

  /** `modules`: the model's adaptable modules when its family is not a decoder's (encoders); default the family's list. */
  constructor(readonly base: LlamaCheckpoint, modules?: readonly ModuleInfo[]) {
    this.modules = modules ?? modelModules(base.config);
  }

  /** Add a fresh adapter. `config` uses the method's option names (camelCase). */
  addAdapter(name: string, methodName: string, config: Readonly<Record<string, unknown>>, o: { seed?: number; sample?: InitSample } = {}): Adapter {
    const method = getMethod(methodName);
    return this.addParsedAdapter(name, method, method.parseConfig(config), o);
  }

  /** Add a fresh adapter from an already validated config (checkpoints restore through this). */
  addParsedAdapter(name: string, method: AdapterMethod<TargetConfig>, parsed: TargetConfig, o: { seed?: number; sample?: InitSample } = {}): Adapter {
    if (method.prepare) {
      const chosen = method.selectModules ? method.selectModules(parsed, this.modules) : selectTargets(parsed, this.modules);
      parsed = method.prepare(parsed, {
        modules: chosen, ...(o.sample ? { sample: o.sample } : {}),
        linearInputs: (ids, visit) => hostLinearInputs(this.effectiveCheckpoint(), ids, visit),
        baseWeight: (m) => this.baseTensor(`${m}.weight`),
        ...(this.base.tokenizer ? { tokenizer: this.base.tokenizer } : {}),
      });
    }
    const modules = method.selectModules ? method.selectModules(parsed, this.modules) : selectTargets(parsed, this.modules);
    const random = seededRandom(o.seed ?? 0);
    const baseOverrides = new Map<string, NamedTensor>();
    const params = method.createParams({
      config: parsed, modules, model: this.base.config, random,
      baseWeight: (m) => this.baseTensor(`${m}.weight`),
      keyValues: (ids) => hostKeyValues(this.effectiveCheckpoint(), ids),
      ...(this.base.tokenizer ? { tokenizer: this.base.tokenizer } : {}),
    });
    // Methods that rewrite the base (PiSSA) report it through createParams' store under `__base__/<module>`.
    for (const [k, v] of [...params]) {
      if (k.startsWith('__base__/')) {
        const name = `${k.slice(9)}.weight`;
        baseOverrides.set(name, { shape: this.baseTensor(name).shape, data: v.data });
        params.delete(k);
      }
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

  /**
   * Apply `names` per row from now on (each row picks one of them or the base, by `rowIds`), or, with
   * undefined, go back to applying every enabled adapter to every row. Runtimes made before keep their mode.
   */
  setRowAdapters(names: readonly string[] | undefined): void {
    if (names === undefined) { this.rowAdapters = undefined; return; }
    const list = names.map((n) => this.get(n));
    checkRowAdapters(list);
    this.rowAdapters = list;
  }

  /** Row ids for a mixed batch: per row an adapter name given to setRowAdapters, or '__base__'. */
  rowIds(perRow: readonly string[]): number[] {
    const list = this.rowAdapters;
    if (!list) throw new Error('rowIds: no mixed batch is set up (call setRowAdapters first)');
    return perRow.map((n, r) => {
      if (n === MIXED_BASE) return 0;
      const i = list.findIndex((a) => a.name === n);
      if (i < 0) throw new Error(`row ${r}: adapter '${n}' is not one of the batch's adapters (${[MIXED_BASE, ...list.map((a) => a.name)].join(', ')})`);
      return i + 1;
    });
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
    let config = this.base.config;
    for (const a of this.adapters.values()) {
      if (!a.enabled) continue;
      for (const [name, t] of a.baseOverrides) tensors.set(name, t);
      // A replaced output layer (PEFT modules_to_save on lm_head) unties it from the embedding.
      if (config.tiedEmbeddings && a.baseOverrides.has('lm_head.weight')) config = { ...config, tiedEmbeddings: false };
      if (!a.merged) continue;
      for (const m of a.modules) {
        const key = `${m.name}.weight`, biasKey = `${m.name}.bias`;
        // The bias is merged from the bias as it was before this adapter (weights are merged one adapter at a time).
        const bias = a.method.mergeBias?.(m, tensors.get(biasKey), a.params, a.config);
        tensors.set(key, { shape: tensors.get(key)!.shape, data: a.method.merge!(m, tensors.get(key)!, a.params, a.config) });
        if (bias) tensors.set(biasKey, { shape: [m.outFeatures], data: bias });
      }
    }
    return { ...this.base, config, tensors };
  }

  /** Linear modules whose effective bias the model config does not declare (merged output shifts). */
  private extraBiases(): Set<string> {
    const declared = (m: string) => this.base.tensors.has(`${m}.bias`);
    const out = new Set<string>();
    for (const a of this.adapters.values()) {
      if (!a.enabled || !a.merged || !a.method.mergeBias) continue;
      for (const m of a.modules) if (!declared(m.name) && a.method.mergeBias(m, undefined, a.params, a.config)) out.add(m.name);
    }
    return out;
  }

  /**
   * The graph transform applying every enabled, unmerged adapter. Adapters on the same module chain:
   * each one's `base(x)` is the previous ones applied to x (so an adapter that rescales the input, like
   * (IA)³ on down_proj, composes with one that adds to the output). `regularizers(g)` are the active
   * adapters' loss terms for a training graph built with these hooks, by the name each is logged under
   * (the method's `regularizerName`, prefixed with the adapter's name when two would share one).
   */
  hooks(o: { training: boolean } = { training: false }): { hooks: ModelHooks; built: Map<Graph, Map<string, Tensor>>; regularizers(g: Graph): Map<string, Tensor> } {
    const built = new Map<Graph, Map<string, Tensor>>();
    const mixed = this.rowAdapters;
    const active = mixed ? [...mixed] : [...this.adapters.values()].filter((a) => a.enabled && !a.merged);
    const byModule = new Map<string, { a: Adapter; m: ModuleInfo }[]>();
    for (const a of active) for (const m of a.modules) {
      if (!(m.kind === 'sublayer' ? a.method.sublayer : a.method.linear)) continue;
      const list = byModule.get(m.name) ?? [];
      list.push({ a, m });
      byModule.set(m.name, list);
    }
    let site = 0;
    const context = (a: Adapter, g: Graph): BuildContext => {
      const params = built.get(g) ?? new Map<string, Tensor>();
      built.set(g, params);
      return {
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
    };
    const rank = (t: Tensor) => t.shape.length;
    // A mixed batch: each adapter alone on the module, masked to its rows (src/adapters/mixed/rows.ts).
    const mixedLinear = (ctx: LinearContext, list: { a: Adapter; m: ModuleInfo }[]): Tensor => {
      const base = ctx.base(), rows = ctx.x.shape[0]!;
      const shared: LinearContext = { ...ctx, base: (x?: Tensor) => (x === undefined || x === ctx.x ? base : ctx.base(x)) };
      return mixRows(base, list.map(({ a, m }) => ({
        out: a.method.linear!(shared, m, a.config, context(a, ctx.graph)),
        mask: rowMask(ctx.graph, mixed!.length, rows, mixed!.indexOf(a), rank(base)),
      })));
    };
    const linear = (ctx: LinearContext): Tensor => {
      const list = byModule.get(ctx.name);
      if (!list) return ctx.base();
      if (mixed) return mixedLinear(ctx, list);
      // Adapter k sees as its base the chain of adapters before it; the unchanged input's result is shared.
      const apply = (k: number, c: LinearContext): Tensor => {
        if (k < 0) return c.base();
        const { a, m } = list[k]!;
        const own = c.base;
        let plain: Tensor | undefined;
        const base = (x?: Tensor): Tensor => (x === undefined || x === c.x ? (plain ??= apply(k - 1, c)) : apply(k - 1, { ...c, x, base: (xx?: Tensor) => own(xx ?? x) }));
        return a.method.linear!({ ...c, base }, m, a.config, context(a, c.graph));
      };
      return apply(list.length - 1, ctx);
    };
    const sublayer = (ctx: SublayerContext): Tensor => {
      if (mixed) {
        const rows = ctx.output.shape[0]!;
        return mixRows(ctx.output, (byModule.get(ctx.name) ?? []).map(({ a, m }) => ({
          out: a.method.sublayer!(ctx, m, a.config, context(a, ctx.graph)),
          mask: rowMask(ctx.graph, mixed.length, rows, mixed.indexOf(a), rank(ctx.output)),
        })));
      }
      let out = ctx.output;
      for (const { a, m } of byModule.get(ctx.name) ?? []) out = a.method.sublayer!({ ...ctx, output: out }, m, a.config, context(a, ctx.graph));
      return out;
    };
    const inputSide = active.filter((a) => a.method.embeddings);
    const prefixed = active.filter((a) => a.method.attentionPrefix);
    if (inputSide.length > 1) throw new Error(`only one input-side adapter can be active at a time (active: ${inputSide.map((a) => a.name).join(', ')})`);
    if (prefixed.length > 1) throw new Error(`only one attention-prefix adapter can be active at a time (active: ${prefixed.map((a) => a.name).join(', ')})`);
    const [emb, pre] = [inputSide[0], prefixed[0]];
    // Adapters that read each row's instance representation (IDPT, the SSF pool) share one host function.
    const instanceSide = active.find((a) => a.method.instance);
    const biases = this.extraBiases();
    const tasks = mixed ? mixed.length + 1 : this.taskCount();
    const hooks: ModelHooks = {
      linear,
      ...(tasks !== undefined ? { tasks } : {}),
      ...([...byModule.values()].some((l) => l[0]!.m.kind === 'sublayer') ? { sublayer } : {}),
      ...(instanceSide ? { instance: (ids: ArrayLike<number>, targets: ArrayLike<number> | undefined, batch: number, seq: number) => instanceSide.method.instance!(instanceSide.config, this.embeddingTable(), this.base.config.dim, ids, targets, batch, seq) } : {}),
      ...(emb ? {
        embeddings: (x: Tensor, g: Graph, e: { decoding: boolean; batch: number }) => emb.method.embeddings!({ graph: g, x, ...e }, emb.config, context(emb, g)),
        virtualTokens: emb.method.virtualTokens?.(emb.config) ?? 0,
      } : {}),
      ...(pre ? {
        attentionPrefix: (c: Parameters<NonNullable<ModelHooks['attentionPrefix']>>[0]) => pre.method.attentionPrefix!(c, pre.config, context(pre, c.graph)),
        prefixTokens: pre.method.prefixTokens?.(pre.config) ?? 0,
      } : {}),
      ...(biases.size ? { biases } : {}),
    };
    const regularizers = (g: Graph): Map<string, Tensor> => {
      const terms = new Map<string, Tensor>();
      for (const a of active) {
        const r = a.method.regularizer?.(a.modules, a.config, context(a, g));
        if (!r) continue;
        const name = a.method.regularizerName ?? 'regularizer';
        const shared = active.filter((b) => b.method.regularizer && (b.method.regularizerName ?? 'regularizer') === name).length > 1;
        terms.set(shared ? `${a.name}.${name}` : name, r);
      }
      return terms;
    };
    return { hooks, built, regularizers };
  }

  /**
   * How many task ids the active, unmerged adapters route by (the fewest where several do), or undefined
   * where none routes by task.
   */
  taskCount(): number | undefined {
    const counts = [...this.adapters.values()].filter((a) => a.enabled && !a.merged && a.method.taskCount).map((a) => a.method.taskCount!(a.config));
    return counts.length ? Math.min(...counts) : undefined;
  }

  private table?: Float32Array;
  /** The base token embedding as f32 [vocab, D] (decoded once), for host-side instance features (IDPT). */
  embeddingTable(): Float32Array {
    return (this.table ??= tensorF32(this.baseTensor(`${modelModules(this.base.config).find((m) => m.kind === 'embedding')!.name}.weight`)));
  }

  /** Per-step training logic of an adapter's method, if it has any. */
  controller(name: string, totalSteps: number): TrainingController | undefined {
    const a = this.get(name);
    return a.method.controller?.(a, { totalSteps });
  }

  /** Whether an adapter parameter trains (frozen ones are saved but stay fixed). */
  isTrainable(name: string, key: string): boolean {
    const a = this.get(name);
    return a.method.trainable?.(key, a.config) ?? true;
  }

  /** Upload every adapter parameter a session's graph declares. */
  uploadAdapterParams(s: Session): void {
    for (const v of s.graph.values) {
      if (v.kind !== 'param' || !v.name?.includes('/')) continue;
      if (v.name === ROW_SELECTOR_PARAM) {
        if (!this.rowAdapters) throw new Error('the graph was built for a mixed batch, and none is set up now');
        s.set(v.id, rowSelectorTable(this.rowAdapters.length));
        continue;
      }
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
    for (const [k, p] of this.get(name).params) if (this.isTrainable(name, k)) n += p.data.length;
    return n;
  }
}
