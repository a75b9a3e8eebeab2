/**
 * Messages between the page (main.ts, the UI thread) and the engine worker (worker.ts), and the state
 * the page publishes as `window.adaptkitDemo` for people poking at it in devtools and for the browser test.
 *
 * Every request carries an id and gets exactly one reply: `{ id, ok: true, result }` or
 * `{ id, ok: false, error }`. Progress arrives as events without an id.
 */

export type BackendChoice = 'auto' | 'webgpu' | 'wasm' | 'js';
export type BackendName = Exclude<BackendChoice, 'auto'>;

export interface BackendProbe {
  readonly name: BackendName;
  readonly available: boolean;
  /** What it runs on ("wasm (relaxed SIMD, 2 threads)"), or why it is missing. */
  readonly detail: string;
}

export interface MethodInfo {
  readonly name: string;
  /** The method's config keys (LoRA: r, alpha, targetModules…). */
  readonly options: readonly string[];
}

export interface ModelInfo {
  readonly source: string;
  readonly architecture: string;
  readonly layers: number;
  readonly dim: number;
  readonly vocab: number;
  readonly context: number;
  readonly parameters: number;
  /** Bytes of the weights as loaded (compact ones in their layouts). */
  readonly weightBytes: number;
  /** The weights' types as loaded, with how many tensors each ("q8_0 × 15, f32 × 11"). */
  readonly dtypes: string;
}

/** What the loader does with the frozen 2-D weights: keep the stored type, or store them as one. */
export type BaseChoice = 'auto' | 'f16' | 'q8_0' | 'q4_0';

export interface EstimateResult {
  /** formatEstimate of the run's plan on the chosen backend. */
  readonly text: string;
  /** The backend's memory limits, in words. */
  readonly limits: string;
  /** Why the run will not fit; undefined when it fits. */
  readonly problem?: string;
  /** Settings that would fit (when it does not), cheapest change first. */
  readonly advice: readonly string[];
}

export interface TrainSettings {
  readonly backend: BackendChoice;
  readonly method: string;
  readonly rank: number;
  readonly targets: string;
  readonly steps: number;
  readonly lr: number;
  readonly batch: number;
  readonly seq: number;
  readonly seed: number;
  /** Per-layer activation checkpointing (recompute each layer's forward in backward). */
  readonly checkpointing: boolean;
  /** Built-in hero task, or a text (.txt: blank-line paragraphs; .jsonl) file. */
  readonly data: 'builtin' | File;
  readonly sampleTokens: number;
}

export interface EvalSettings {
  readonly backend: BackendChoice;
  /** The text: a file, or a URL to fetch. */
  readonly source: File | string;
  readonly paragraphs: number;
  readonly maxTokens: number;
}

export type Request =
  | { readonly kind: 'probe' }
  | { readonly kind: 'load-model'; readonly url?: string; readonly files?: readonly File[]; readonly baseDtype: BaseChoice }
  | { readonly kind: 'estimate'; readonly settings: TrainSettings }
  | { readonly kind: 'train'; readonly settings: TrainSettings }
  | { readonly kind: 'pause' }
  | { readonly kind: 'resume' }
  | { readonly kind: 'stop' }
  | { readonly kind: 'generate'; readonly backend: BackendChoice; readonly prompt: string; readonly maxTokens: number }
  | { readonly kind: 'eval'; readonly settings: EvalSettings }
  | { readonly kind: 'save' }
  | { readonly kind: 'load-adapter'; readonly files: readonly File[] };

export interface ProbeResult {
  readonly backends: readonly BackendProbe[];
  /** What `auto` picked, and why (or why it failed). */
  readonly auto: { readonly name?: BackendName; readonly reason: string };
  readonly isolated: boolean;
}

export interface TrainResult {
  readonly backend: string;
  readonly before: string;
  readonly after: string;
  readonly losses: readonly number[];
  readonly seconds: number;
  readonly stopped: boolean;
  readonly trainableParameters: number;
}

export interface AdapterFiles {
  readonly config: string;
  readonly weights: Uint8Array<ArrayBuffer>;
}

export interface MemoryInfo {
  /** Bytes of compute arenas (weights, activations, gradients, optimizer state) live on the backend. */
  readonly arenaBytes: number;
  readonly peakArenaBytes: number;
  readonly backend: string;
}

export type WorkerEvent =
  | { readonly event: 'hello'; readonly methods: readonly MethodInfo[] }
  | { readonly event: 'progress'; readonly text: string }
  | { readonly event: 'step'; readonly step: number; readonly steps: number; readonly loss: number; readonly lr: number; readonly tokens: number; readonly seconds: number }
  | { readonly event: 'paused'; readonly paused: boolean; readonly step: number }
  | { readonly event: 'backend'; readonly describe: string; readonly reason: string }
  | { readonly event: 'memory'; readonly memory: MemoryInfo }
  | { readonly event: 'crash'; readonly error: string };

export type Reply = { readonly id: number; readonly ok: true; readonly result: unknown } | { readonly id: number; readonly ok: false; readonly error: string };

/** One training run as the page shows it. */
export interface RunState {
  label: string;
  readonly backend: string;
  readonly losses: number[];
  status: 'running' | 'paused' | 'done' | 'stopped' | 'failed';
  error?: string;
  tokensPerSecond?: number;
  seconds?: number;
}

/** What the page publishes as `window.adaptkitDemo`. */
export interface DemoState {
  ready: boolean;
  busy: string;
  methods: readonly MethodInfo[];
  probe?: ProbeResult;
  model?: ModelInfo;
  /** The memory estimate of the run the form describes, as last shown. */
  estimate?: EstimateResult;
  runs: RunState[];
  samples: { before?: string; after?: string; generated?: string };
  evals: { paragraphs: number; maxTokens: number; loss: number; tokens: number; backend: string }[];
  adapter?: { source: string; bytes: number };
  memory?: MemoryInfo;
  errors: string[];
}
