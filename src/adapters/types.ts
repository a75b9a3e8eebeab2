/**
 * The adapter contract. An adapter method is a graph transform over named modules plus its parameters,
 * their save/load keys and, where the method allows it, a merge into the base weight. Each method lives
 * in a folder of its own (config, layer, method) and registers itself in `registry.ts`.
 */
import type { LlamaConfig, NamedTensor } from '../formats/checkpoint.js';
import type { Graph, Tensor } from '../graph/graph.js';
import type { LinearContext } from '../model/llama.js';

/** Adapter parameters keyed relative to the model, e.g. `model.layers.0.self_attn.q_proj.lora_A.weight`. */
export type ParamStore = Map<string, NamedTensor>;

export interface ModuleInfo {
  /** Hugging Face module name, e.g. `model.layers.3.mlp.down_proj`. */
  readonly name: string;
  readonly kind: 'linear' | 'embedding';
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly layer?: number;
}

/** What every method's config shares: which modules it targets (PEFT semantics). */
export interface TargetConfig {
  /** Module name suffixes (`q_proj`), full names, or one regex string matched against the full name. */
  targetModules: string[] | string;
  /** Only these layer indices (default: all). */
  layersToTransform?: number[];
}

export interface InitContext<C> {
  readonly config: C;
  readonly modules: readonly ModuleInfo[];
  readonly model: LlamaConfig;
  /** The frozen base weight of a module (`name.weight`), for data-driven inits (PiSSA). */
  baseWeight(module: string): NamedTensor;
  random(): number;
}

/** Per-build facts a transform needs. */
export interface BuildContext {
  readonly graph: Graph;
  readonly training: boolean;
  /** i32 [1] seed for dropout masks (training only). */
  readonly seed?: Tensor;
  /** The graph parameter for an adapter parameter key (created on first use). */
  param(key: string): Tensor;
  /** A per-build counter so every dropout site gets a distinct mask. */
  nextSite(): number;
}

export interface AdapterMethod<C extends TargetConfig = TargetConfig> {
  readonly name: string;
  /** `peft_type` in adapter_config.json, when Hugging Face PEFT has the method. */
  readonly peftType?: string;
  /** Documentation of every config key, shown by `adaptkit train --help`. */
  readonly options: Readonly<Record<string, string>>;
  /** Validate a config (camelCase keys), filling defaults; unknown keys are errors. */
  parseConfig(raw: Readonly<Record<string, unknown>>): C;
  /** The modules a config applies to (default: target matching over linear modules). */
  selectModules?(config: C, modules: readonly ModuleInfo[]): ModuleInfo[];
  /** Fresh parameters for the targeted modules. */
  createParams(ctx: InitContext<C>): ParamStore;
  /** Replace a targeted linear module's output. */
  linear?(ctx: LinearContext, module: ModuleInfo, config: C, b: BuildContext): Tensor;
  /** The base weight with the adapter merged in (mergeable methods). */
  merge?(module: ModuleInfo, weight: NamedTensor, params: ParamStore, config: C): Float32Array;
  /** adapter_config.json contents (PEFT keys). */
  toPeftConfig(config: C): Record<string, unknown>;
  /** Parse adapter_config.json back. */
  fromPeftConfig(json: Readonly<Record<string, unknown>>): C;
  /**
   * What to save when it differs from the live adapter (PiSSA is saved as a plain LoRA of twice the rank
   * that applies to the original base weights).
   */
  exportParams?(adapter: { params: ParamStore; initial: ParamStore; config: C; modules: readonly ModuleInfo[] }): { params: ParamStore; config: C };
}
