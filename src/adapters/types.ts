/**
 * The adapter contract. An adapter method is a graph transform over named modules plus its parameters,
 * their save/load keys and, where the method allows it, a merge into the base weight. Each method lives
 * in a folder of its own (config, layer, method) and registers itself in `registry.ts`.
 */
import type { F32Tensor, LlamaConfig, NamedTensor } from '../formats/checkpoint.js';
import type { Graph, Tensor } from '../graph/graph.js';
import type { HostKeyValues, LinearInputVisitor } from '../model/host-forward.js';
import type { LinearContext, SublayerContext } from '../model/llama.js';
import type { TokenizerData } from '../tokenizer/types.js';

/** Adapter parameters keyed relative to the model, e.g. `model.layers.0.self_attn.q_proj.lora_A.weight`. */
export type ParamStore = Map<string, F32Tensor>;

export interface ModuleInfo {
  /** Hugging Face module name, e.g. `model.layers.3.mlp.down_proj`. */
  readonly name: string;
  /** `sublayer`: an attention or MLP block's output (`model.layers.N.self_attn` / `.mlp`), for bottleneck adapters. */
  readonly kind: 'linear' | 'embedding' | 'sublayer';
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
  /** Modules never adapted even when targeted: names or suffixes, or one regex string (PEFT exclude_modules). */
  excludeModules?: string[] | string;
}

export interface InitContext<C> {
  readonly config: C;
  readonly modules: readonly ModuleInfo[];
  readonly model: LlamaConfig;
  /** The frozen base weight of a module (`name.weight`), for data-driven inits (PiSSA). */
  baseWeight(module: string): NamedTensor;
  /** The base model's tokenizer, when it has one (prompt tuning's text initialisation). */
  readonly tokenizer?: TokenizerData;
  /**
   * The model's keys and values per layer after reading `ids` from position 0 (prefix tuning's init from
   * real tokens); absent where only the parameters' shapes are wanted (reading a saved adapter).
   */
  keyValues?(ids: readonly number[]): HostKeyValues;
  random(): number;
}

/**
 * A data sample for data-driven initialisations (EVA, CorDA): token rows, each read from position 0, taken
 * `batchRows` at a time.
 */
export interface InitSample {
  readonly rows: readonly Int32Array[];
  /** Per row, 1 where the position's token is a training target (PEFT's labels ≠ −100), 0 elsewhere (prompt, padding). */
  readonly targets: readonly Uint8Array[];
  /** Per row, 1 where the position holds a token of an example (PEFT's attention mask), 0 on padding. */
  readonly present: readonly Uint8Array[];
  readonly batchRows: number;
}

/** What a method's `prepare` sees: the selected modules and a data sample run through the base model. */
export interface PrepareContext {
  readonly modules: readonly ModuleInfo[];
  readonly sample?: InitSample;
  /** Runs `ids` through the model as it is (float64, on the host) and gives every linear module's input to `visit`. */
  linearInputs(ids: readonly number[], visit: LinearInputVisitor): void;
  baseWeight(module: string): NamedTensor;
  /** The base model's tokenizer, when it has one (CPT's context given as text). */
  readonly tokenizer?: TokenizerData;
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

/** The token embeddings [B, T, D] an input-side adapter transforms (prompt tuning). */
export interface EmbeddingsContext {
  readonly graph: Graph;
  readonly x: Tensor;
  /**
   * In a KV-cache decoding graph (one position per run) the virtual tokens cannot be prepended: the adapter
   * instead picks, per run, either one virtual token or the real one by the i32 [B, 1] input named
   * `VIRTUAL_SLOT_INPUT` (model/llama.ts): slot s < virtualTokens selects virtual token s, virtualTokens + b
   * batch row b's own token.
   */
  readonly decoding: boolean;
  readonly batch: number;
}

/** Where a per-layer key/value prefix goes (prefix tuning): keys and values are [B, P, Hkv, headDim]. */
export interface AttentionPrefixContext {
  readonly graph: Graph;
  readonly layer: number;
  readonly batch: number;
  readonly kvHeads: number;
  readonly headDim: number;
}

/** What a training controller may do between the backward pass and the optimizer update, and after it. */
export interface TrainerAccess {
  /** Current values of adapter parameters, by key. */
  values(keys: readonly string[]): Promise<Map<string, Float32Array>>;
  /** Gradients of the last step (averaged over micro-batches), by key; only for keys still training. */
  gradients(keys: readonly string[]): Promise<Map<string, Float32Array>>;
  /** Overwrite a parameter's value (masks, restored frozen entries). */
  write(key: string, data: Float32Array): void;
  /** The keys that train from the next step on; the backward work of the others is skipped. */
  setTrainable(keys: readonly string[]): void;
}

/** Per-step logic of methods whose masks or trainable sets change while training. */
export interface TrainingController {
  /** After the gradients of 1-based step `step` are computed, before the optimizer uses them. */
  beforeUpdate?(step: number, t: TrainerAccess): Promise<void>;
  /** After the optimizer update of step `step`. */
  afterUpdate?(step: number, t: TrainerAccess): Promise<void>;
  /** What a checkpoint must keep for a resumed run to continue exactly (importance averages, kept values…). */
  exportState?(): Map<string, Float64Array>;
  /** Restore `exportState`'s output before the first resumed step; missing or misshapen entries are errors. */
  importState?(state: ReadonlyMap<string, Float64Array>): void;
}

/** Copy `state[name]` into `into`, or say what is wrong: for controllers' importState. */
export function restoreArray(state: ReadonlyMap<string, Float64Array>, name: string, into: Float64Array | Float32Array, method: string): void {
  const v = state.get(name);
  if (!v) throw new Error(`${method}: the checkpoint's controller state has no ${name}`);
  if (v.length !== into.length) throw new Error(`${method}: the checkpoint's controller state ${name} has ${v.length} values, expected ${into.length}`);
  into.set(v);
}

/**
 * Parts of a PEFT adapter besides the method's own tensors. Their values are base tensors the adapter
 * replaces (Adapter.baseOverrides).
 */
export interface PeftExtras {
  /** modules_to_save as written, and the modules it resolved to (each replaced whole). */
  readonly modulesToSave: readonly string[];
  readonly savedModules: readonly string[];
  /** trainable_token_indices as written, and per embedding-like module the token rows it replaces. */
  readonly trainableTokenIndices?: number[] | Record<string, number[]>;
  readonly tokenRows: ReadonlyMap<string, readonly number[]>;
  /** Adapted modules whose base weight the folder carried (`<module>.base_layer.weight`). */
  readonly baseLayers: readonly string[];
}

/** An adapter as a controller sees it. */
export interface AdapterState<C> {
  readonly config: C;
  readonly modules: readonly ModuleInfo[];
  readonly params: ParamStore;
}

export interface AdapterMethod<C extends TargetConfig = TargetConfig> {
  readonly name: string;
  /**
   * `peft_type` in adapter_config.json: Hugging Face PEFT's name where PEFT has the method, else this
   * library's own (documented in the method folder's README; such folders load here, not in PEFT).
   */
  readonly peftType?: string;
  /** Documentation of every config key, shown by `adaptkit train --help`. */
  readonly options: Readonly<Record<string, string>>;
  /**
   * The peak learning rate fineTune and `adaptkit train` use when none is given, and where the value comes
   * from (a paper's or PEFT's example settings, or the methods benchmark where neither has one).
   */
  readonly defaultLr: { readonly value: number; readonly source: string };
  /** Validate a config (camelCase keys), filling defaults; unknown keys are errors. */
  parseConfig(raw: Readonly<Record<string, unknown>>): C;
  /** The modules a config applies to (default: target matching over linear modules). */
  selectModules?(config: C, modules: readonly ModuleInfo[]): ModuleInfo[];
  /**
   * Before the parameters are made: a config completed from a data sample (EVA's ranks and components,
   * CorDA's covariances). Runs on fresh adapters only, never when a saved one is read.
   */
  prepare?(config: C, ctx: PrepareContext): C;
  /** Fresh parameters for the targeted modules. */
  createParams(ctx: InitContext<C>): ParamStore;
  /** Parameters that train (default: all). The others are saved and uploaded but stay fixed (LaMDA's PMA). */
  trainable?(key: string, config: C): boolean;
  /** Replace a targeted linear module's output. */
  linear?(ctx: LinearContext, module: ModuleInfo, config: C, b: BuildContext): Tensor;
  /** Replace a targeted sublayer's output (before its residual add). */
  sublayer?(ctx: SublayerContext, module: ModuleInfo, config: C, b: BuildContext): Tensor;
  /** Transform the token embeddings; must prepend exactly `virtualTokens(config)` positions (outside decoding). */
  embeddings?(ctx: EmbeddingsContext, config: C, b: BuildContext): Tensor;
  /**
   * Host-side per-row features the embeddings transform reads from `INSTANCE_INPUT` (IDPT), f32 [batch, D]:
   * `table` is the base token embedding [vocab, dim]; `targets` as ModelHooks.instance's.
   */
  instance?(config: C, table: Float32Array, dim: number, ids: ArrayLike<number>, targets: ArrayLike<number> | undefined, batch: number, seq: number): Float32Array;
  /** Positions `embeddings` prepends (prompt tuning's virtual tokens). */
  virtualTokens?(config: C): number;
  /** Keys and values every attention layer sees before the sequence's own (prefix tuning). */
  attentionPrefix?(ctx: AttentionPrefixContext, config: C, b: BuildContext): { k: Tensor; v: Tensor };
  /** Length of `attentionPrefix`'s keys. */
  prefixTokens?(config: C): number;
  /** A term added to the training loss (AdaLoRA's orthogonality regulariser). */
  regularizer?(modules: readonly ModuleInfo[], config: C, b: BuildContext): Tensor | undefined;
  /** The name the regulariser is logged under, beside the task loss (default 'regularizer'). */
  regularizerName?: string;
  /**
   * Task ids the method routes by (Poly's n_tasks): its graph reads each row's id from the model's i32 [B]
   * input `TASK_ID_INPUT`, which training data (a "task" field) and generation then supply.
   */
  taskCount?(config: C): number;
  /** Per-step training logic (rank allocation, scheduled freezing); `totalSteps` is the run's length. */
  controller?(adapter: AdapterState<C>, o: { totalSteps: number }): TrainingController;
  /** The base weight with the adapter merged in (mergeable methods). */
  merge?(module: ModuleInfo, weight: NamedTensor, params: ParamStore, config: C): Float32Array;
  /**
   * The module's bias after merging, for methods that shift or scale outputs (SSF, (IA)³); `bias` is the
   * current one (absent when the module has none). Returning undefined keeps it as it is.
   */
  mergeBias?(module: ModuleInfo, bias: NamedTensor | undefined, params: ParamStore, config: C): Float32Array | undefined;
  /** Parameter keys whose first axis follows the module's output rows (Q/K rotary reorientation on save/load). */
  readonly outputRowKeys?: RegExp;
  /** Parameter keys whose last axis follows the module's output rows (a branch reading the layer's output: Hydra). */
  readonly outputColumnKeys?: RegExp;
  /** Prefix of tensor names in adapter_model.safetensors (default `base_model.model.`; prompt learning uses none). */
  readonly fileKeyPrefix?: string;
  /** Convert saved tensors between this library's rotary layout and Hugging Face's (default: output rows). */
  reorient?(params: ParamStore, o: { model: LlamaConfig; config: C; toHf: boolean }): ParamStore;
  /**
   * adapter_config.json contents (PEFT keys); `model` gives the dimensions prompt learning records, `modules`
   * the adapted modules (written by name where PEFT could not select them from the config's own fields;
   * without them, as configured: this library's own files, such as training states, read that back).
   */
  toPeftConfig(config: C, model: LlamaConfig, modules?: readonly ModuleInfo[]): Record<string, unknown>;
  /** Parse adapter_config.json back. */
  fromPeftConfig(json: Readonly<Record<string, unknown>>): C;
  /** Refuse a PEFT folder's config that would load here but compute something else than in PEFT. */
  checkPeftImport?(json: Readonly<Record<string, unknown>>): void;
  /**
   * What to save when it differs from the live adapter (PiSSA is saved as a plain LoRA of twice the rank
   * that applies to the original base weights).
   */
  exportParams?(adapter: { params: ParamStore; initial: ParamStore; config: C; modules: readonly ModuleInfo[] }): { params: ParamStore; config: C };
}
