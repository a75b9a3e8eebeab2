/**
 * From separately trained LoRA experts to a PHATGOOSE adapter: the experts are checked to be routable
 * together (plain LoRA on the same linear modules, one rank and scaling per expert), their A and B copied,
 * and each expert's gate trained on its own with the expert frozen.
 */
import type { Adapter, AdaptedModel } from '../adapted-model.js';
import type { Backend } from '../../backends/backend.js';
import type { PackedBlocks } from '../../data/dataset.js';
import { type LoraConfig, loraModuleConfig, loraScaling } from '../lora/config.js';
import { loraKeys } from '../lora/layer.js';
import { fineTune } from '../../train/finetune.js';
import type { ParamStore } from '../types.js';
import { type PhatgooseExpert, type PhatgooseMode, parsePhatgooseConfig } from './config.js';
import { phatgoose } from './index.js';
import { phatgooseKeys } from './layer.js';

/** Each expert's name, rank and scaling, and the modules they all adapt; refuses what cannot be routed. */
export function inventoryOf(experts: readonly Adapter[]): { experts: PhatgooseExpert[]; modules: string[] } {
  if (experts.length === 0) throw new Error('phatgoose: the inventory of experts is empty');
  const out: PhatgooseExpert[] = [];
  let modules: string[] | undefined, first = '';
  for (const a of experts) {
    const c = a.config as LoraConfig;
    if (a.method.name !== 'lora') throw new Error(`phatgoose: expert '${a.name}' is a ${a.method.name} adapter; experts must be LoRA`);
    if (c.useDora) throw new Error(`phatgoose: expert '${a.name}' uses DoRA; experts must be plain LoRA`);
    if (a.baseOverrides.size) throw new Error(`phatgoose: expert '${a.name}' replaces base weights (${[...a.baseOverrides.keys()][0]}); experts must share the base`);
    const bad = a.modules.find((m) => m.kind !== 'linear');
    if (bad) throw new Error(`phatgoose: expert '${a.name}' adapts ${bad.name}, which is not a linear module`);
    const names = a.modules.map((m) => m.name).sort();
    if (!modules) { modules = names; first = a.name; } else if (names.join() !== modules.join()) {
      throw new Error(`phatgoose: expert '${a.name}' adapts other modules than '${first}' (${names.length} against ${modules.length}; e.g. ${names.find((n) => !modules!.includes(n)) ?? modules.find((n) => !names.includes(n))})`);
    }
    const ranks = new Set(a.modules.map((m) => a.params.get(loraKeys(m.name).a)!.shape[0]!));
    const scalings = new Set(a.modules.map((m) => loraScaling(loraModuleConfig(c, m.name))));
    if (ranks.size !== 1 || scalings.size !== 1) throw new Error(`phatgoose: expert '${a.name}' has per-module ranks or scalings (rank_pattern/alpha_pattern); one rank and scaling per expert is supported`);
    out.push({ name: a.name, r: [...ranks][0]!, scaling: [...scalings][0]! });
  }
  return { experts: out, modules: modules! };
}

/**
 * Attach to `target` a PHATGOOSE adapter named `name` over `experts` (LoRA adapters, possibly on another
 * AdaptedModel of the same base): 'gate' mode for one expert, 'route' mode for the inventory. `gates`:
 * per expert name, its trained gate vectors by module (zero where absent).
 */
export function attachPhatgoose(target: AdaptedModel, name: string, experts: readonly Adapter[], o: { mode: PhatgooseMode; topK?: number; temperature?: number; gates?: ReadonlyMap<string, ReadonlyMap<string, Float32Array>> }): Adapter {
  const inv = inventoryOf(experts);
  const config = phatgoose.parseConfig({ experts: inv.experts, mode: o.mode, topK: o.topK ?? Math.min(2, inv.experts.length), temperature: o.temperature ?? 0, targetModules: inv.modules });
  const modules = phatgoose.selectModules!(config, target.modules);
  const params: ParamStore = new Map();
  for (const a of experts) {
    for (const m of modules) {
      const src = loraKeys(m.name), k = phatgooseKeys(m.name, a.name);
      for (const [from, to] of [[src.a, k.a], [src.b, k.b]] as const) {
        const p = a.params.get(from)!;
        params.set(to, { shape: [...p.shape], data: Float32Array.from(p.data) });
      }
      const gate = o.gates?.get(a.name)?.get(m.name);
      if (gate && gate.length !== m.inFeatures) throw new Error(`phatgoose: expert '${a.name}' gate for ${m.name} has ${gate.length} values, expected ${m.inFeatures}`);
      params.set(k.gate, { shape: [m.inFeatures], data: gate ? Float32Array.from(gate) : new Float32Array(m.inFeatures) });
    }
  }
  const initial: ParamStore = new Map([...params].map(([key, v]) => [key, { shape: v.shape, data: Float32Array.from(v.data) }]));
  return target.attach({ name, method: phatgoose as never, config, modules, params, initial, baseOverrides: new Map(), enabled: true, merged: false });
}

export interface GateTrainingOptions {
  backend: Backend;
  /** The gate-training data: one set for every expert, or per expert name (the paper trains each gate on its expert's own data). */
  data: PackedBlocks | ReadonlyMap<string, PackedBlocks>;
  /** Steps per expert (default 100, as the paper). */
  steps?: number;
  batch?: number;
  lr?: number;
  seed?: number;
  onExpert?: (expert: string, losses: number[]) => void;
}

/**
 * Train each expert's gate alone (the expert and the base frozen, its output scaled by σ(v·x)) on `data`
 * (shared, or that expert's own);
 * returns per expert the gate vector of every module.
 */
export async function trainGates(makeModel: () => AdaptedModel, experts: readonly Adapter[], o: GateTrainingOptions): Promise<Map<string, Map<string, Float32Array>>> {
  inventoryOf(experts);
  const dataOf = (name: string): PackedBlocks => {
    if (!(o.data instanceof Map)) return o.data as PackedBlocks;
    const d = o.data.get(name);
    if (!d) throw new Error(`phatgoose: no gate-training data for expert '${name}'`);
    return d;
  };
  for (const e of experts) dataOf(e.name);
  const out = new Map<string, Map<string, Float32Array>>();
  for (const e of experts) {
    const model = makeModel();
    const a = attachPhatgoose(model, 'gate', [e], { mode: 'gate' });
    const r = await fineTune({ model, adapter: 'gate', backend: o.backend, data: dataOf(e.name), steps: o.steps ?? 100, batch: o.batch ?? 4, ...(o.lr !== undefined ? { lr: o.lr } : {}), decay: 'constant', seed: o.seed ?? 0 });
    await r.run.syncAdapter();
    out.set(e.name, new Map(a.modules.map((m) => [m.name, Float32Array.from(a.params.get(phatgooseKeys(m.name, e.name).gate)!.data)])));
    o.onExpert?.(e.name, r.losses);
  }
  return out;
}
