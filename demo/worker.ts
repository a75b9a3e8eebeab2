/**
 * The demo's engine, in a dedicated worker: the model, the adapter, the backends and every long job
 * live here, so the page stays responsive while a step runs, and the wasm backend may use its thread
 * pool (the caller has to block in Atomics.wait, which a page's main thread may not).
 */
import {
  AdaptedModel, type Backend, type ExecutionPlan, type Executable, type LlamaCheckpoint, type Tokenizer, type WeightSources,
  createBackend, createTokenizer, fineTune, getMethod, heroStories, jsonlExamples, loadCheckpoint, loadPeft, memorySource,
  methodNames, pack, paragraphs, savePeft, textExamples,
} from '../src/index.js';
import { isCompactTensor } from '../src/formats/checkpoint.js';
import { httpSource } from '../src/formats/source.js';
import { formatBytes, formatEstimate, memoryProblem } from '../src/scheduler/memory.js';
import { checkpointBytes, estimateTraining, fittingVariants } from '../src/train/memory.js';
import type {
  AdapterFiles, BackendChoice, BackendName, BackendProbe, BaseChoice, EstimateResult, EvalSettings, MemoryInfo, ModelInfo, ProbeResult, Reply, Request,
  TrainResult, TrainSettings, WorkerEvent,
} from './protocol.js';

/** This worker's own port (typed through the DOM's Worker, which has the same postMessage). */
const port = self as unknown as Worker;
const post = (m: WorkerEvent | Reply, transfer: Transferable[] = []): void => port.postMessage(m, transfer);
const progress = (text: string): void => post({ event: 'progress', text });

// ------------------------------------------------------------------------------------------ backends

interface Held { backend: Backend; live: Map<Executable, number> }

const held = new Map<BackendName, Promise<Held>>();
let autoName: BackendName | undefined;
let autoReason = '';
let peakArena = 0;

function memory(h: Held): MemoryInfo {
  let live = 0;
  for (const b of h.live.values()) live += b;
  peakArena = Math.max(peakArena, live);
  return { arenaBytes: live, peakArenaBytes: peakArena, backend: h.backend.describe() };
}

/**
 * The backend with every loaded plan's arena counted: the one figure every backend can give for the
 * memory it holds (weights, activations, gradients, optimizer state).
 */
function tracked(b: Backend): Held {
  const h: Held = { backend: b, live: new Map() };
  const load = async (plan: ExecutionPlan, weights?: WeightSources): Promise<Executable> => {
    // The weights travel with the plan: they are how sessions of one model share one copy.
    const exe = await b.load(plan, weights);
    h.live.set(exe, plan.arenaElems * 4);
    post({ event: 'memory', memory: memory(h) });
    return new Proxy(exe, {
      get(target, key) {
        if (key === 'dispose') return () => { h.live.delete(exe); target.dispose(); };
        const v = Reflect.get(target, key, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  };
  h.backend = new Proxy(b, {
    get(target, key) {
      if (key === 'load') return load;
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return h;
}

async function backendFor(choice: BackendChoice): Promise<Held> {
  if (choice === 'auto') {
    if (!autoName) await probeAuto();
    if (!autoName) throw new Error(`auto found no backend: ${autoReason}`);
    return backendFor(autoName);
  }
  let p = held.get(choice);
  if (!p) {
    p = createBackend(choice).then((c) => tracked(c.backend));
    held.set(choice, p);
    p.catch(() => held.delete(choice));
  }
  return p;
}

/** Forget a backend after a failure (a lost device, memory that ran out): the next job starts a fresh one. */
async function drop(choice: BackendChoice): Promise<void> {
  const name = choice === 'auto' ? autoName : choice;
  if (!name) return;
  const p = held.get(name);
  held.delete(name);
  try { (await p)?.backend.dispose(); } catch { /* already unusable */ }
}

async function probeAuto(): Promise<void> {
  try {
    const c = await createBackend('auto');
    autoName = c.backend.name;
    autoReason = c.reason;
    if (!held.has(autoName)) held.set(autoName, Promise.resolve(tracked(c.backend)));
    else c.backend.dispose();
  } catch (e) {
    autoName = undefined;
    autoReason = (e as Error).message;
  }
}

async function probeWebgpu(): Promise<BackendProbe> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return { name: 'webgpu', available: false, detail: 'this browser has no WebGPU (navigator.gpu is missing)' };
  const adapter = await gpu.requestAdapter().catch(() => null);
  if (!adapter) return { name: 'webgpu', available: false, detail: 'WebGPU is present but gave no adapter' };
  const i = adapter.info;
  const software = (i as { isFallbackAdapter?: boolean }).isFallbackAdapter === true || /swiftshader|llvmpipe|lavapipe|warp/i.test(`${i.vendor} ${i.architecture} ${i.description}`);
  return { name: 'webgpu', available: true, detail: `${[i.vendor, i.architecture, i.description].filter(Boolean).join(' ')}${software ? ' (software)' : ''}` };
}

async function probe(): Promise<ProbeResult> {
  await probeAuto();
  const backends: BackendProbe[] = [await probeWebgpu()];
  for (const name of ['wasm', 'js'] as const) {
    try {
      backends.push({ name, available: true, detail: (await backendFor(name)).backend.describe() });
    } catch (e) {
      backends.push({ name, available: false, detail: (e as Error).message });
    }
  }
  return { backends, auto: { ...(autoName ? { name: autoName } : {}), reason: autoReason }, isolated: self.crossOriginIsolated };
}

// ------------------------------------------------------------------------------------------ model

interface Loaded { ckpt: LlamaCheckpoint; tok: Tokenizer; info: ModelInfo }

let loaded: Loaded | undefined;
/** The model the page talks to: the last trained or loaded adapter, or none. */
let current: AdaptedModel | undefined;

function need(): Loaded {
  if (!loaded) throw new Error('load a model first');
  return loaded;
}

async function fetchBytes(url: string, what: string): Promise<Uint8Array<ArrayBuffer>> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`could not fetch ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new Error(`could not fetch ${url}: HTTP ${res.status} ${res.statusText}`);
  const total = Number(res.headers.get('content-length') ?? 0);
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const chunks: Uint8Array[] = [];
  let got = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    got += value.length;
    progress(`downloading ${what}: ${(got / 1e6).toFixed(1)}${total ? ` / ${(total / 1e6).toFixed(1)}` : ''} MB`);
  }
  const out = new Uint8Array(got);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

const fileBytes = async (f: File): Promise<Uint8Array<ArrayBuffer>> => new Uint8Array(await f.arrayBuffer());

/**
 * A GGUF file or URL is read a tensor at a time (File slices; HTTP range requests), so only the weights,
 * in their compact types, are ever held; a llama2.c model.bin with its tokenizer.bin, or a Hugging Face
 * folder's files, are small enough to read whole.
 */
async function readModel(req: { url?: string; files?: readonly File[]; baseDtype: BaseChoice }): Promise<LlamaCheckpoint> {
  const base = { baseDtype: req.baseDtype };
  if (req.url) {
    const name = decodeURIComponent(new URL(req.url, self.location.href).pathname.split('/').pop() || 'model');
    const url = new URL(req.url, self.location.href).href;
    progress(`reading ${name} by range requests`);
    try {
      // The file's name, not its URL, names the model (as for a picked file).
      return await loadCheckpoint({ ...await httpSource(url), name }, base);
    } catch (e) {
      // A server without range requests still serves the whole file.
      if (!/ignores HTTP range requests/.test((e as Error).message)) throw e;
      return loadCheckpoint(await fetchBytes(url, name), { ...base, name });
    }
  }
  const files = [...(req.files ?? [])];
  if (files.length === 0) throw new Error('pick a model file');
  progress(`reading ${files.map((f) => f.name).join(', ')}`);
  if (files.some((f) => f.name === 'config.json')) {
    const map = new Map<string, Uint8Array>();
    for (const f of files) map.set(f.name, await fileBytes(f));
    return loadCheckpoint(memorySource(map, files.find((f) => /safetensors/.test(f.name))?.name ?? 'model'), base);
  }
  const gguf = files.find((f) => /\.gguf$/i.test(f.name));
  if (gguf) return loadCheckpoint(gguf, { ...base, name: gguf.name });
  // llama2.c: the model is the larger file, its tokenizer.bin the smaller.
  const [model, tokenizer] = [...files].sort((a, b) => b.size - a.size);
  return loadCheckpoint(await fileBytes(model!), { ...base, name: model!.name, ...(tokenizer ? { tokenizer: await fileBytes(tokenizer) } : {}) });
}

async function loadModel(req: { url?: string; files?: readonly File[]; baseDtype: BaseChoice }): Promise<ModelInfo> {
  const ckpt = await readModel(req);
  if (!ckpt.tokenizer) throw new Error(`${ckpt.source}: this model has no tokenizer; pick its tokenizer file (e.g. tokenizer.bin) together with the model`);
  const tok = createTokenizer(ckpt.tokenizer);
  let parameters = 0;
  const dtypes = new Map<string, number>();
  for (const t of ckpt.tensors.values()) {
    parameters += t.shape.reduce((a, b) => a * b, 1);
    const d = isCompactTensor(t) ? t.dtype : 'f32';
    dtypes.set(d, (dtypes.get(d) ?? 0) + 1);
  }
  const c = ckpt.config;
  const info: ModelInfo = {
    source: ckpt.source, architecture: c.architecture, layers: c.nLayers, dim: c.dim, vocab: c.vocabSize, context: c.maxSeqLen,
    parameters, weightBytes: checkpointBytes(ckpt), dtypes: [...dtypes].map(([d, n]) => `${d} × ${n}`).join(', '),
  };
  loaded = { ckpt, tok, info };
  current = new AdaptedModel(ckpt);
  return info;
}

// ------------------------------------------------------------------------------------------ jobs

async function sample(model: AdaptedModel, backend: Backend, maxTokens: number, prompt = ''): Promise<string> {
  const { tok } = need();
  const rt = model.runtime(backend);
  try {
    const ids = prompt ? tok.encode(prompt, { bos: true }) : [tok.bosId ?? 1];
    return prompt + tok.decode(await rt.generate(ids, { maxTokens }), { stripLeadingSpace: !prompt });
  } finally {
    rt.dispose();
  }
}

/** The method's config from the form: rank and targets go to the options the method has. */
function methodConfig(s: TrainSettings): Record<string, unknown> {
  const options = Object.keys(getMethod(s.method).options);
  const cfg: Record<string, unknown> = {};
  if (options.includes('r')) cfg.r = s.rank;
  if (options.includes('alpha')) cfg.alpha = 2 * s.rank;
  if (options.includes('targetModules') && s.targets.trim()) cfg.targetModules = s.targets.trim();
  return cfg;
}

async function trainingData(s: TrainSettings, tok: Tokenizer) {
  if (s.data === 'builtin') return pack(textExamples(heroStories(96), tok, s.seq), s.seq, 0);
  const text = await s.data.text();
  const examples = /\.jsonl$/i.test(s.data.name) ? jsonlExamples(text, s.data.name, tok, s.seq) : textExamples(paragraphs(text), tok, s.seq);
  if (examples.length === 0) throw new Error(`${s.data.name}: no training examples (paragraphs are separated by blank lines)`);
  return pack(examples, s.seq, 0);
}

/** Pause and stop are honoured between optimizer steps; a train request clears them. */
const control = { paused: false, stop: false, wake: (): void => {} };

/**
 * Resolves in a new task, after the messages already queued (pause, stop) have been handled. The js
 * and wasm backends compute a whole step without leaving the microtask queue, so without this a
 * training loop would not see a message until it ended. A MessageChannel, unlike setTimeout, adds no
 * clamped delay.
 */
const tick = new MessageChannel();
function nextTask(): Promise<void> {
  return new Promise((resolve) => {
    tick.port1.onmessage = () => resolve();
    tick.port2.postMessage(null);
  });
}

class Stopped extends Error {}

/** The memory the run will need on its backend (planned, nothing allocated), and, when it will not fit, what would. */
async function estimate(s: TrainSettings): Promise<EstimateResult> {
  const { ckpt } = need();
  const { backend } = await backendFor(s.backend);
  const model = new AdaptedModel(ckpt);
  model.addAdapter('default', s.method, methodConfig(s), { seed: s.seed });
  const shape = { batch: s.batch, seq: s.seq, checkpointing: s.checkpointing };
  const e = estimateTraining(model, 'default', backend, shape);
  const caps = backend.memoryCaps?.();
  const limits = [
    caps?.totalBytes !== undefined ? `${formatBytes(caps.totalBytes)} in all` : 'no known total',
    caps?.bufferBytes !== undefined ? `${formatBytes(caps.bufferBytes)} per buffer` : '',
  ].filter(Boolean).join(', ');
  const problem = memoryProblem(e, caps);
  const advice = problem ? fittingVariants(model, 'default', backend, shape, caps).map((v) => `${v.label} (${formatBytes(v.estimate.totalBytes)})`) : [];
  return {
    text: `${formatEstimate(e)}; the page also holds the base weights (${formatBytes(e.hostBytes)})`,
    limits: `${backend.name} limits: ${limits}`, ...(problem ? { problem } : {}), advice,
  };
}

async function train(s: TrainSettings): Promise<TrainResult> {
  const { ckpt, tok } = need();
  progress(`starting the ${s.backend} backend`);
  const h = await backendFor(s.backend);
  post({ event: 'backend', describe: h.backend.describe(), reason: s.backend === 'auto' ? autoReason : `asked for ${s.backend}` });
  const model = new AdaptedModel(ckpt);
  model.addAdapter('default', s.method, methodConfig(s), { seed: s.seed });
  const data = await trainingData(s, tok);
  progress('greedy sample before training');
  const before = await sample(model, h.backend, s.sampleTokens);
  const losses: number[] = [];
  let run: Awaited<ReturnType<typeof fineTune>>['run'] | undefined;
  let stopped = false;
  const t0 = performance.now();
  progress(`training: ${data.rows} packed rows of ${s.seq} tokens`);
  try {
    await fineTune({
      model, adapter: 'default', backend: h.backend, data, steps: s.steps, batch: s.batch, lr: s.lr,
      warmup: Math.min(4, Math.floor(s.steps / 5)), maxGradNorm: 1, seed: s.seed, checkpointing: s.checkpointing,
      onStep: (r) => {
        losses.push(r.loss);
        post({ event: 'step', step: r.step, steps: s.steps, loss: r.loss, lr: r.lr, tokens: r.tokens, seconds: r.seconds });
        post({ event: 'memory', memory: memory(h) });
      },
      // A checkpoint after every step is where the loop may wait (pause) or end early (stop); the
      // adapter has just been synced, so a stopped run keeps what it learned.
      checkpointEvery: 1,
      onCheckpoint: async (step, r) => {
        run = r;
        await nextTask();
        if (control.paused && !control.stop) {
          post({ event: 'paused', paused: true, step });
          await new Promise<void>((wake) => { control.wake = wake; });
          post({ event: 'paused', paused: false, step });
        }
        if (control.stop) throw new Stopped();
      },
    });
  } catch (e) {
    if (!(e instanceof Stopped)) throw e;
    stopped = true;
  } finally {
    run?.trainer.session.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  current = model;
  progress('greedy sample after training');
  const after = await sample(model, h.backend, s.sampleTokens);
  return { backend: h.backend.describe(), before, after, losses, seconds, stopped, trainableParameters: model.parameterCount('default') };
}

const evalTexts = new Map<string, string>();

async function evaluate(s: EvalSettings): Promise<{ loss: number; tokens: number; backend: string }> {
  const { tok } = need();
  let text: string;
  if (typeof s.source === 'string') {
    text = evalTexts.get(s.source) ?? new TextDecoder().decode(await fetchBytes(s.source, 'evaluation text'));
    evalTexts.set(s.source, text);
  } else {
    text = await s.source.text();
  }
  const paras = paragraphs(text).slice(0, s.paragraphs);
  if (paras.length === 0) throw new Error('the evaluation text has no paragraphs');
  // As `adaptkit eval`: BOS + each paragraph, cut to maxTokens predicted tokens.
  const seqs = paras.map((p) => tok.encode(p, { bos: true }).slice(0, s.maxTokens + 1));
  const h = await backendFor(s.backend);
  const rt = (current ?? new AdaptedModel(need().ckpt)).runtime(h.backend);
  try {
    const r = await rt.evalLoss(seqs, { batch: 8, onProgress: (d, n) => progress(`evaluating: ${d}/${n} paragraphs`) });
    return { ...r, backend: h.backend.describe() };
  } finally {
    rt.dispose();
  }
}

function save(): AdapterFiles {
  if (!current?.adapters.has('default')) throw new Error('train or load an adapter first');
  const files = savePeft(current, 'default', { baseModel: need().info.source });
  return { config: files.config, weights: files.weights.slice() };
}

async function loadAdapter(files: readonly File[]): Promise<{ method: string; parameters: number; modules: number; source: string }> {
  const { ckpt } = need();
  const config = files.find((f) => /\.json$/i.test(f.name));
  const weights = files.find((f) => /\.safetensors$/i.test(f.name));
  if (!config || !weights) throw new Error('pick both files of the adapter: adapter_config.json and adapter_model.safetensors');
  const model = new AdaptedModel(ckpt);
  const a = loadPeft(model, 'default', { config: await config.text(), weights: await fileBytes(weights) }, weights.name.replace(/\.safetensors$/i, ''));
  current = model;
  return { method: a.method.name, parameters: model.parameterCount('default'), modules: a.modules.length, source: `${config.name} + ${weights.name}` };
}

// ------------------------------------------------------------------------------------------ dispatch

/** Readable messages for the failures a page can recover from. */
function explain(e: unknown, what: string): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (/out of memory|allocation failed|could not allocate|maximum memory|invalid array buffer length|OOM/i.test(msg)) {
    return `Out of memory while ${what}: ${msg}. Try a smaller batch, sequence length or rank, or another backend.`;
  }
  if (/device (was |is )?lost|destroyed/i.test(msg)) return `The GPU device was lost while ${what}: ${msg}. The next job starts a new device.`;
  return `${what[0]!.toUpperCase()}${what.slice(1)} failed: ${msg}`;
}

const WHAT: Record<Request['kind'], string> = {
  'probe': 'probing backends', 'load-model': 'loading the model', 'estimate': 'estimating memory', 'train': 'training', 'generate': 'generating',
  'eval': 'evaluating', 'save': 'saving the adapter', 'load-adapter': 'loading the adapter', 'pause': 'pausing',
  'resume': 'resuming', 'stop': 'stopping',
};

async function handle(req: Request): Promise<unknown> {
  switch (req.kind) {
    case 'probe': return probe();
    case 'load-model': return loadModel(req);
    case 'estimate': return estimate(req.settings);
    case 'train': return train(req.settings);
    case 'generate': return sample(current ?? new AdaptedModel(need().ckpt), (await backendFor(req.backend)).backend, req.maxTokens, req.prompt);
    case 'eval': return evaluate(req.settings);
    case 'save': return save();
    case 'load-adapter': return loadAdapter(req.files);
    case 'pause': case 'resume': case 'stop': return null;
  }
}

/** Long jobs run one at a time, in order; pause, resume and stop act at once. */
let queue: Promise<unknown> = Promise.resolve();

port.onmessage = (e: MessageEvent<Request & { id: number }>) => {
  const req = e.data;
  if (req.kind === 'train') Object.assign(control, { paused: false, stop: false });
  if (req.kind === 'pause' || req.kind === 'resume' || req.kind === 'stop') {
    if (req.kind === 'pause') control.paused = true;
    else { control.paused = false; control.stop ||= req.kind === 'stop'; control.wake(); }
    post({ id: req.id, ok: true, result: null });
    return;
  }
  queue = queue.then(async () => {
    try {
      const result = await handle(req);
      const transfer = result && typeof result === 'object' && 'weights' in result ? [(result as AdapterFiles).weights.buffer] : [];
      post({ id: req.id, ok: true, result }, transfer);
    } catch (err) {
      console.error(err);
      const message = explain(err, WHAT[req.kind]);
      const choice = req.kind === 'train' || req.kind === 'eval' || req.kind === 'estimate' ? req.settings.backend : req.kind === 'generate' ? req.backend : undefined;
      // A failed training run may leave its session behind; a lost device or exhausted memory leaves the backend unusable.
      if (choice && (req.kind === 'train' || /^(Out of memory|The GPU device was lost)/.test(message))) await drop(choice);
      post({ id: req.id, ok: false, error: message });
    }
  });
};

self.addEventListener('unhandledrejection', (e) => post({ event: 'crash', error: String((e as PromiseRejectionEvent).reason) }));
post({ event: 'hello', methods: methodNames().map((name) => ({ name, options: Object.keys(getMethod(name).options) })) });
