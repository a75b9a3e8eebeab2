/**
 * The demo page's UI thread: the form, the chart and the downloads. Every computation happens in the
 * engine worker (worker.ts); this file only sends requests and shows what comes back.
 */
import { drawChart } from './chart.js';
import type {
  AdapterFiles, BackendChoice, BaseChoice, DemoState, EstimateResult, EvalSettings, ModelInfo, ProbeResult, Reply, Request, RunState, TrainResult,
  TrainSettings, WorkerEvent,
} from './protocol.js';
import { zipStored } from './zip.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const input = (id: string): HTMLInputElement => $<HTMLInputElement>(id);
const num = (id: string): number => Number(input(id).value);
const MB = (b: number): string => `${(b / 1e6).toFixed(b < 1e7 ? 2 : 1)} MB`;
const COLORS = ['#1f6fd1', '#d1591f', '#2a9d4b', '#8a3fc2', '#c2a000', '#c23f6e'];

const state: DemoState = { ready: false, busy: '', methods: [], runs: [], samples: {}, evals: [], errors: [] };
(globalThis as { adaptkitDemo?: DemoState }).adaptkitDemo = state;

// ------------------------------------------------------------------------------------------ worker

let worker: Worker;
let nextId = 1;
let crashes = 0;
/** The last model that loaded, to load again after a restart. */
let lastModel: { url?: string; files?: File[]; baseDtype: BaseChoice } | undefined;
const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();

function startWorker(): void {
  worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = (e: MessageEvent<WorkerEvent | Reply>) => ('id' in e.data ? settle(e.data) : onEvent(e.data));
  worker.onerror = (e) => {
    e.preventDefault();
    restartEngine(`The engine stopped (${e.message || 'an error it could not report'})`, true);
  };
}

/**
 * Ends the engine worker (crashed, or stuck inside a step) and starts a fresh one with the same model,
 * so the page stays usable; what was trained since the last download is lost. An engine that keeps
 * crashing is restarted three times at most.
 */
function restartEngine(why: string, crashed = false): void {
  worker.terminate();
  state.model = undefined;
  const again = !crashed || crashes++ < 3;
  const msg = again ? `${why}; it was restarted${lastModel ? ' and the model is loading again' : ''}.` : `${why}. Reload the page.`;
  if (pending.size === 0) showError(msg);
  for (const p of pending.values()) p.reject(new Error(msg));
  pending.clear();
  if (!again) return;
  startWorker();
  void (async () => {
    while (state.busy) await new Promise((r) => setTimeout(r, 50));
    await job('checking backends', probe);
    if (lastModel) await loadModel(lastModel);
  })();
}

function settle(r: Reply): void {
  const p = pending.get(r.id);
  pending.delete(r.id);
  if (r.ok) p?.resolve(r.result);
  else p?.reject(new Error(r.error));
}

function call<T>(req: Request): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
    worker.postMessage({ ...req, id });
  });
}

// ------------------------------------------------------------------------------------------ display

function log(text: string): void {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  $('log').append(li);
  li.scrollIntoView({ block: 'nearest' });
}

function showError(msg: string): void {
  state.errors.push(msg);
  $('error-text').textContent = msg;
  $('error').hidden = false;
  log(msg);
}

function status(text: string): void { $('status').textContent = text; }

const controls = ['load-url', 'model-files', 'base-dtype', 'train', 'generate', 'adapter-files', 'evaluate', 'backend'];

/** Runs one job with the controls locked; its error shows on the page and leaves the page usable. */
async function job<T>(what: string, f: () => Promise<T>): Promise<T | undefined> {
  if (state.busy) return undefined;
  state.busy = what;
  for (const id of controls) input(id).disabled = true;
  status(`${what}…`);
  $('error').hidden = true;
  try {
    return await f();
  } catch (e) {
    showError((e as Error).message);
    return undefined;
  } finally {
    state.busy = '';
    for (const id of controls) input(id).disabled = false;
    if (!state.model) for (const id of ['train', 'generate', 'adapter-files', 'evaluate']) input(id).disabled = true;
    status(state.model ? 'ready' : 'load a model');
  }
}

let chartQueued = false;
function redraw(): void {
  if (chartQueued) return;
  chartQueued = true;
  requestAnimationFrame(() => {
    chartQueued = false;
    drawChart($<HTMLCanvasElement>('chart'), state.runs.map((r, i) => ({ label: r.label, color: COLORS[i % COLORS.length]!, values: r.losses })));
  });
}

type MeasuringPerformance = Performance & {
  memory?: { usedJSHeapSize: number };
  measureUserAgentSpecificMemory?: () => Promise<{ bytes: number }>;
};
let tabBytes: number | undefined;
let measuring = false;

/**
 * Backend arenas (from the worker), the page's JS heap (performance.memory, Chromium), and the whole
 * tab with its workers and wasm memories where the browser measures it (cross-origin isolated pages).
 */
function showMemory(): void {
  const perf = performance as MeasuringPerformance;
  if (perf.measureUserAgentSpecificMemory && crossOriginIsolated && !measuring) {
    measuring = true;
    perf.measureUserAgentSpecificMemory().then((r) => { tabBytes = r.bytes; }, () => {}).finally(() => { measuring = false; });
  }
  const m = state.memory;
  $('stat-memory').textContent = [
    m ? `${m.backend.split(' ')[0]} arenas ${MB(m.arenaBytes)} (peak ${MB(m.peakArenaBytes)})` : '',
    perf.memory ? `page JS heap ${MB(perf.memory.usedJSHeapSize)}` : '',
    tabBytes !== undefined ? `tab ${MB(tabBytes)}` : '',
  ].filter(Boolean).join(' · ');
}

function onEvent(e: WorkerEvent): void {
  switch (e.event) {
    case 'hello': {
      state.methods = e.methods;
      $('method').replaceChildren(...e.methods.map((m) => new Option(m.name, m.name, m.name === 'lora', m.name === 'lora')));
      methodChanged();
      break;
    }
    case 'progress': status(e.text); break;
    case 'backend': log(`backend: ${e.describe} (${e.reason})`); break;
    case 'step': {
      const run = state.runs[state.runs.length - 1];
      if (!run) break;
      run.losses.push(e.loss);
      run.tokensPerSecond = e.tokens / e.seconds;
      run.seconds = e.seconds;
      $('stat-step').textContent = `step ${e.step}/${e.steps}`;
      $('stat-loss').textContent = `loss ${e.loss.toFixed(4)}`;
      $('stat-speed').textContent = `${run.tokensPerSecond.toFixed(0)} tokens/s`;
      $('stat-time').textContent = `${e.seconds.toFixed(1)} s`;
      status(`training: step ${e.step}/${e.steps}`);
      redraw();
      break;
    }
    case 'paused': {
      const run = state.runs[state.runs.length - 1];
      if (run && run.status !== 'stopped') run.status = e.paused ? 'paused' : 'running';
      if (e.paused) status(`paused after step ${e.step}`);
      $('pause').textContent = e.paused ? 'Resume' : 'Pause';
      break;
    }
    case 'memory': state.memory = e.memory; showMemory(); break;
    case 'crash': showError(`Engine error: ${e.error}`); break;
  }
}

function methodChanged(): void {
  const m = state.methods.find((x) => x.name === $<HTMLSelectElement>('method').value);
  input('rank').disabled = !m?.options.includes('r');
  input('targets').disabled = !m?.options.includes('targetModules');
}

// ------------------------------------------------------------------------------------------ actions

async function probe(): Promise<void> {
  const p = await call<ProbeResult>({ kind: 'probe' });
  state.probe = p;
  $('backends').replaceChildren(...p.backends.map((b) => {
    const li = document.createElement('li');
    li.innerHTML = `<b></b> <span class="${b.available ? 'yes' : 'no'}"></span>`;
    li.querySelector('b')!.textContent = b.name;
    li.querySelector('span')!.textContent = b.available ? b.detail : `not available: ${b.detail}`;
    return li;
  }));
  $('auto-reason').textContent = `auto chooses ${p.auto.name ?? 'nothing'}: ${p.auto.reason}.${p.isolated ? '' : ' This page is not cross-origin isolated, so wasm runs on one thread.'}`;
  for (const o of $<HTMLSelectElement>('backend').options) {
    const b = p.backends.find((x) => x.name === o.value);
    o.textContent = o.value === 'auto' ? `auto (${p.auto.name ?? 'none'})` : `${o.value}${b?.available ? '' : ' (not available)'}`;
  }
}

async function loadModel(req: { url?: string; files?: File[]; baseDtype: BaseChoice }): Promise<void> {
  await job('loading the model', async () => {
    const info = await call<ModelInfo>({ kind: 'load-model', ...req });
    state.model = info;
    state.adapter = undefined;
    lastModel = req;
    $('model-info').textContent = `${info.source}: ${info.architecture}, ${info.layers} layers, dim ${info.dim}, vocabulary ${info.vocab}, context ${info.context}; ${info.parameters.toLocaleString('en-US')} parameters, ${MB(info.weightBytes)} as loaded (${info.dtypes}).`;
    $('downloads').replaceChildren(Object.assign(document.createElement('span'), { className: 'hint', textContent: 'Train or load an adapter to download it.' }));
    log(`loaded ${info.source}`);
  });
  void showEstimate();
}

/**
 * The memory the run the form describes will need on its backend, the backend's limits and, when it
 * will not fit, settings that would. Returns undefined when the form or the estimate failed.
 */
async function showEstimate(): Promise<EstimateResult | undefined> {
  if (!state.model) return undefined;
  let s: TrainSettings;
  try { s = settings(); } catch { return undefined; }
  let e: EstimateResult;
  try {
    e = await call<EstimateResult>({ kind: 'estimate', settings: s });
  } catch (err) {
    $('estimate').textContent = `No estimate: ${(err as Error).message}`;
    return undefined;
  }
  state.estimate = e;
  $('estimate').textContent = `Memory estimate: ${e.text}. ${e.limits}.`;
  $('advice').hidden = !e.problem;
  $('advice').textContent = e.problem
    ? `This run will not fit: ${e.problem}.\n${e.advice.length ? `Would fit: ${e.advice.join('; ')}` : 'No smaller setting tried fits either: use a smaller model, or another backend.'}`
    : '';
  return e;
}

function settings(): TrainSettings {
  const file = input('data-file').files?.[0];
  const fromFile = $<HTMLSelectElement>('data').value === 'file';
  if (fromFile && !file) throw new Error('pick a training text file, or choose the built-in task');
  const s: TrainSettings = {
    backend: $<HTMLSelectElement>('backend').value as BackendChoice, method: $<HTMLSelectElement>('method').value,
    rank: num('rank'), targets: input('targets').value, steps: num('steps'), lr: num('lr'), batch: num('batch'), seq: num('seq'),
    seed: num('seed'), checkpointing: input('checkpointing').checked, data: fromFile ? file! : 'builtin', sampleTokens: num('sample-tokens'),
  };
  for (const k of ['rank', 'steps', 'batch', 'seq', 'sampleTokens'] as const) {
    if (!(Number.isInteger(s[k]) && s[k] >= 1)) throw new Error(`${k} must be a whole number ≥ 1 (got ${s[k]})`);
  }
  if (!(s.lr > 0)) throw new Error(`the learning rate must be positive (got ${input('lr').value || 'nothing'})`);
  return s;
}

async function train(): Promise<void> {
  let s: TrainSettings;
  try { s = settings(); } catch (e) { showError((e as Error).message); return; }
  if (state.busy) return;
  // A run that will not fit is refused here, with the estimate's advice, before anything starts.
  const e = await job('estimating memory', showEstimate);
  if (e?.problem) {
    showError(`This run will not fit on ${s.backend}: ${e.problem}. ${e.advice.length ? `Would fit: ${e.advice.join('; ')}` : 'No smaller setting tried fits either.'}`);
    return;
  }
  if (state.busy) return;
  const run: RunState = { label: `run ${state.runs.length + 1} · ${s.backend}`, backend: s.backend, losses: [], status: 'running' };
  state.runs.push(run);
  state.samples = {};
  for (const id of ['sample-before', 'sample-after']) $(id).textContent = '';
  input('pause').disabled = input('stop').disabled = false;
  $('pause').textContent = 'Pause';
  $('stop').textContent = 'Stop';
  redraw();
  await job('training', async () => {
    let r: TrainResult;
    try {
      r = await call<TrainResult>({ kind: 'train', settings: s });
    } catch (e) {
      run.status = 'failed';
      run.error = (e as Error).message;
      throw e;
    } finally {
      input('pause').disabled = input('stop').disabled = true;
      $('pause').textContent = 'Pause';
      $('stop').textContent = 'Stop';
    }
    run.seconds = r.seconds;
    run.label = `${run.label.split(' · ')[0]} · ${r.backend.split(' ')[0]}`;
    state.samples = { before: r.before, after: r.after };
    $('sample-before').textContent = r.before;
    $('sample-after').textContent = r.after;
    log(`${r.stopped ? 'stopped' : 'trained'} ${r.losses.length} steps on ${r.backend} in ${r.seconds.toFixed(1)} s: loss ${r.losses[0]?.toFixed(4)} → ${r.losses[r.losses.length - 1]?.toFixed(4)} (${r.trainableParameters.toLocaleString('en-US')} trainable parameters)`);
    redraw();
    await offerDownload(`trained on ${r.backend}`);
    run.status = r.stopped ? 'stopped' : 'done';
  });
}

let urls: string[] = [];

/** Links for the PEFT folder's two files, and both in one zip. */
async function offerDownload(source: string): Promise<void> {
  const files = await call<AdapterFiles>({ kind: 'save' });
  state.adapter = { source, bytes: files.weights.length + files.config.length };
  for (const u of urls) URL.revokeObjectURL(u);
  const config = new TextEncoder().encode(files.config);
  const items: [string, BlobPart, string][] = [
    ['adapter_config.json', config, 'application/json'],
    ['adapter_model.safetensors', files.weights, 'application/octet-stream'],
    ['adapter.zip', zipStored([{ name: 'adapter/adapter_config.json', data: config }, { name: 'adapter/adapter_model.safetensors', data: files.weights }]), 'application/zip'],
  ];
  urls = items.map(([, data, type]) => URL.createObjectURL(new Blob([data], { type })));
  $('downloads').replaceChildren(`download (${(state.adapter.bytes / 1024).toFixed(0)} KiB, ${source}): `, ...items.map(([name], i) => Object.assign(document.createElement('a'), {
    href: urls[i]!, download: name, className: 'file', id: `download-${name.split('.')[0]!.replace(/_/g, '-')}`, textContent: name,
  })));
}

async function generate(): Promise<void> {
  const text = await call<string>({
    kind: 'generate', backend: $<HTMLSelectElement>('backend').value as BackendChoice, prompt: input('prompt').value, maxTokens: num('sample-tokens') || 48,
  });
  state.samples.generated = text;
  $('generated').textContent = text;
}

async function loadAdapter(files: File[]): Promise<void> {
  const r = await call<{ method: string; parameters: number; modules: number; source: string }>({ kind: 'load-adapter', files });
  $('adapter-info').textContent = `Loaded ${r.source}: ${r.method} on ${r.modules} modules, ${r.parameters.toLocaleString('en-US')} parameters. Generate and Evaluate now use it.`;
  log(`loaded adapter ${r.source}`);
  await offerDownload(`loaded from ${r.source}`);
  await generate();
}

async function evaluate(): Promise<void> {
  const src = $<HTMLSelectElement>('eval-source').value;
  const file = input('eval-file').files?.[0];
  if (src === 'file' && !file) throw new Error('pick a text file to evaluate on');
  const s: EvalSettings = {
    backend: $<HTMLSelectElement>('backend').value as BackendChoice, source: src === 'file' ? file! : src,
    paragraphs: num('eval-paragraphs'), maxTokens: num('eval-tokens'),
  };
  const r = await call<{ loss: number; tokens: number; backend: string }>({ kind: 'eval', settings: s });
  state.evals.push({ paragraphs: s.paragraphs, maxTokens: s.maxTokens, ...r });
  $('eval-result').textContent = `loss ${r.loss.toFixed(5)} nats/token over ${r.tokens} tokens (${s.paragraphs} paragraphs, ≤ ${s.maxTokens} tokens each, on ${r.backend})`;
  log(`eval: loss ${r.loss.toFixed(6)} over ${r.tokens} tokens`);
}

// ------------------------------------------------------------------------------------------ wiring

/** Defaults a server may offer beside the page (the model and evaluation text it serves). */
async function serverAssets(): Promise<void> {
  const res = await fetch('assets.json').catch(() => undefined);
  if (!res?.ok) return;
  const a = (await res.json()) as { model?: { url: string; label: string }; evalText?: { url: string; label: string } };
  if (a.model) input('model-url').value = new URL(a.model.url, location.href).href;
  if (a.evalText) {
    const sel = $<HTMLSelectElement>('eval-source');
    sel.prepend(new Option(a.evalText.label, new URL(a.evalText.url, location.href).href, true, true));
  }
}

$('error-close').onclick = () => { $('error').hidden = true; };
$('load-url').onclick = () => {
  const url = input('model-url').value.trim();
  if (url) void loadModel({ url, baseDtype: baseChoice() });
  else showError('enter the URL of a model, or pick files');
};
input('model-files').onchange = () => {
  const files = [...(input('model-files').files ?? [])];
  input('model-files').value = '';
  if (files.length) void loadModel({ files, baseDtype: baseChoice() });
};
const baseChoice = (): BaseChoice => $<HTMLSelectElement>('base-dtype').value as BaseChoice;
$('method').onchange = () => { methodChanged(); void showEstimate(); };
for (const id of ['backend', 'rank', 'targets', 'batch', 'seq', 'checkpointing']) $(id).addEventListener('change', () => { if (!state.busy) void showEstimate(); });
/** A select whose last option picks a file through a hidden input; the option shows the file's name. */
function fileOption(selectId: string, inputId: string): void {
  const sel = $<HTMLSelectElement>(selectId), last = sel.options[sel.options.length - 1]!, label = last.textContent;
  sel.onchange = () => { if (sel.value === last.value) input(inputId).click(); };
  input(inputId).onchange = () => { const f = input(inputId).files?.[0]; last.textContent = f ? `file: ${f.name}` : label; };
}
fileOption('data', 'data-file');
fileOption('eval-source', 'eval-file');
$('train').onclick = () => void train();
/** Pause, resume and stop: if the engine goes away meanwhile, the training job reports it. */
const signal = (kind: 'pause' | 'resume' | 'stop'): void => { call({ kind }).catch(() => {}); };
$('pause').onclick = () => signal($('pause').textContent === 'Pause' ? 'pause' : 'resume');
// Stop ends training after the current step; a step that never ends (a hung GPU) needs Force stop.
$('stop').onclick = () => {
  if ($('stop').textContent === 'Stop') {
    $('stop').textContent = 'Force stop';
    signal('stop');
  } else {
    restartEngine('Training was force-stopped: the engine was ended');
  }
};
$('generate').onclick = () => void job('generating', generate);
input('adapter-files').onchange = () => {
  const files = [...(input('adapter-files').files ?? [])];
  input('adapter-files').value = '';
  if (files.length) void job('loading the adapter', () => loadAdapter(files));
};
$('evaluate').onclick = () => void job('evaluating', evaluate);
addEventListener('resize', redraw);
setInterval(showMemory, 2000);

startWorker();
redraw();
void (async () => {
  await serverAssets();
  await job('checking backends', probe);
  state.ready = true;
})();
