// The browser demo in headless Chromium (SwiftShader WebGPU): train on webgpu and on wasm from the same
// seed and compare the curves, download the adapter and check `adaptkit eval` on it against the page's
// own evaluation, load it back, recover from a bad file, refuse a run that will not fit with advice,
// pause/resume/stop, load a Q8_0 GGUF from a file and train it. Writes out/test-browser/.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type Page, chromium } from 'playwright-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { DemoState } from '../../demo/protocol.js';
import { type DemoServer, prepareDemo, startDemoServer } from '../../scripts/demo.mjs';
import { STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';
import { checkpointToGguf, loadCheckpoint } from '../../src/index.js';
import { cli } from '../cli/run.js';

const OUT = 'out/test-browser';
const ADAPTER = join(OUT, 'adapter');
const STEPS = 30;
/** Small enough for SwiftShader: about a second per step there, a few milliseconds on wasm. */
const TRAIN = { method: 'lora', rank: 8, steps: STEPS, lr: 0.01, batch: 1, seq: 32, seed: 1, 'sample-tokens': 20 };
/** A webgpu run that takes longer is stopped and reported as a failure. */
const WEBGPU_LIMIT_MS = 75_000;
const EVAL = { paragraphs: 8, maxTokens: 64 };
/** Headless flags that give Chromium a WebGPU adapter on SwiftShader (../shared/guides/RUNTIMES.md). */
const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

let server: DemoServer;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
const timings: [string, number][] = [];
let clock = performance.now();
const lap = (what: string): void => { const now = performance.now(); timings.push([what, (now - clock) / 1000]); clock = now; };

const demo = (): Promise<DemoState> => page.evaluate(() => (globalThis as unknown as { adaptkitDemo: DemoState }).adaptkitDemo);

/** Waits until no job runs; returns the page state. */
async function idle(timeout = 60_000): Promise<DemoState> {
  await page.waitForFunction(() => {
    const d = (globalThis as unknown as { adaptkitDemo?: DemoState }).adaptkitDemo;
    return d?.ready && !d.busy;
  }, null, { timeout, polling: 50 });
  return demo();
}

/**
 * One training run from the form. A run still going after `limit` is stopped (Stop, then Force stop,
 * which restarts the page's engine and reloads the model) so that the tests after it can run.
 */
async function trainRun(backend: string, limit = 60_000): Promise<DemoState['runs'][number]> {
  const before = (await demo()).runs.length;
  await page.selectOption('#backend', backend);
  for (const [id, v] of Object.entries(TRAIN)) {
    if (id === 'method') await page.selectOption('#method', String(v));
    else await page.fill(`#${id}`, String(v));
  }
  await page.click('#train');
  try {
    await idle(limit);
  } catch {
    const stuck = (await demo()).runs[before];
    await page.click('#stop');
    await idle(20_000).catch(async () => { await page.click('#stop'); await idle(); });
    const d = await demo();
    assert.unreachable(`the ${backend} run did not end within ${limit / 1000} s: ${stuck?.losses.length ?? 0}/${STEPS} steps (${d.errors.at(-1) ?? ''})`);
  }
  const run = (await demo()).runs[before];
  assert.ok(run, 'the page started no run');
  return run;
}

test.before(async () => {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(ADAPTER, { recursive: true });
  const sizes = await prepareDemo();
  console.log(`page files: ${sizes.map((f) => `${f.file} ${(f.gzip / 1024).toFixed(1)} KiB gzip`).join(', ')}`);
  server = await startDemoServer({ port: 0 });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') console.log(`  [page] ${m.text()}`); });
  lap('build, serve, launch Chromium');
});

test.after(async () => {
  await browser?.close();
  await server?.close();
  lap('close');
  console.log(`timings (s): ${timings.map(([w, s]) => `${w} ${s.toFixed(1)}`).join('; ')}; total ${timings.reduce((a, [, s]) => a + s, 0).toFixed(1)}`);
});

test('the page loads, lists the backends (WebGPU among them) and loads stories260K from the server', async () => {
  await page.goto(server.url);
  const d = await idle(30_000);
  const transfer = [...server.sent].filter(([p]) => !p.startsWith('/assets/')).reduce((a, [, b]) => a + b, 0);
  console.log(`page transfer: ${(transfer / 1024).toFixed(1)} KiB (${[...server.sent].map(([p, b]) => `${p} ${b}`).join(', ')})`);
  assert.ok(d.probe, 'no backend probe');
  await page.click('#load-url');
  const m = await idle();
  assert.equal(m.errors, []);
  assert.is(m.model?.source, 'stories260K.gguf');
  assert.is(m.model?.parameters, 260032);
  const byName = Object.fromEntries(d.probe!.backends.map((b) => [b.name, b]));
  assert.ok(byName.wasm?.available && /\d+ threads?/.test(byName.wasm.detail), `wasm: ${byName.wasm?.detail}`);
  assert.ok(d.probe!.isolated, 'the page is not cross-origin isolated');
  assert.ok(d.probe!.auto.name && d.probe!.auto.reason.length > 10, JSON.stringify(d.probe!.auto));
  assert.ok(d.methods.some((m) => m.name === 'lora'));
  assert.ok(byName.webgpu?.available, `WebGPU is not available in Chromium: ${byName.webgpu?.detail}`);
  assert.match(byName.webgpu!.detail, /swiftshader/i);
  lap('load page and model');
});

test(`trains ${STEPS} steps on webgpu (SwiftShader) and the loss falls`, async () => {
  const t0 = performance.now();
  const run = await trainRun('webgpu', WEBGPU_LIMIT_MS).finally(() => lap('train on webgpu'));
  console.log(`webgpu: ${STEPS} steps in ${run.seconds?.toFixed(1)} s of training, ${((performance.now() - t0) / 1000).toFixed(1)} s with samples`);
  assert.is(run.status, 'done', `the webgpu run ${run.status}: ${run.error}`);
  assert.is(run.losses.length, STEPS);
  assert.ok(run.losses[STEPS - 1]! < 0.5 * run.losses[0]!, `loss ${run.losses[0]} → ${run.losses[STEPS - 1]}`);
});

test(`trains ${STEPS} steps on wasm from the same seed; the loss falls and the samples change`, async () => {
  const run = await trainRun('wasm').finally(() => lap('train on wasm'));
  assert.is(run.status, 'done', `the wasm run ${run.status}: ${run.error}`);
  assert.is(run.losses.length, STEPS);
  assert.ok(run.losses[STEPS - 1]! < 0.5 * run.losses[0]!, `loss ${run.losses[0]} → ${run.losses[STEPS - 1]}`);
  const d = await demo();
  assert.match(d.samples.before ?? '', /Once upon a time/);
  assert.match(d.samples.after ?? '', /dragon named Pip/);
  assert.ok((d.memory?.peakArenaBytes ?? 0) > 1e6, `arena bytes ${d.memory?.peakArenaBytes}`);
});

test('the webgpu and wasm loss curves agree within 1e-4 relative at every step', async () => {
  const runs = (await demo()).runs;
  const gpu = runs.find((r) => r.backend === 'webgpu'), cpu = runs.find((r) => r.backend === 'wasm');
  assert.ok(gpu?.losses.length === STEPS, `no complete webgpu curve (${gpu?.status}: ${gpu?.error})`);
  assert.ok(cpu?.losses.length === STEPS, 'no complete wasm curve');
  const worst = Math.max(...gpu!.losses.map((l, i) => Math.abs(l - cpu!.losses[i]!) / Math.abs(cpu!.losses[i]!)));
  assert.ok(worst <= 1e-4, `largest relative difference ${worst.toExponential(2)}`);
});

test("the page's eval loss equals `adaptkit eval` on the downloaded adapter (js backend)", async () => {
  const errors = (await demo()).errors.length;
  await page.fill('#eval-paragraphs', String(EVAL.paragraphs));
  await page.fill('#eval-tokens', String(EVAL.maxTokens));
  await page.click('#evaluate');
  const d = await idle();
  assert.equal(d.errors.slice(errors), []);
  const onPage = d.evals[d.evals.length - 1]!;
  assert.ok(onPage && onPage.paragraphs === EVAL.paragraphs, 'no evaluation on the page');
  for (const [id, name] of [['#download-adapter-config', 'adapter_config.json'], ['#download-adapter-model', 'adapter_model.safetensors'], ['#download-adapter', 'adapter.zip']]) {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click(id!)]);
    assert.is(download.suggestedFilename(), name);
    await download.saveAs(join(name === 'adapter.zip' ? OUT : ADAPTER, name!));
  }
  lap('evaluate on the page, download');
  const config = readFileSync(join(ADAPTER, 'adapter_config.json'));
  const weights = readFileSync(join(ADAPTER, 'adapter_model.safetensors'));
  assert.is(JSON.parse(config.toString()).peft_type, 'LORA');
  const zip = readFileSync(join(OUT, 'adapter.zip'));
  assert.ok(zip.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1')) && zip.includes(config) && zip.includes(weights), 'the zip does not hold both files');
  const r = cli(['eval', '--model', STORIES_GGUF, '--adapter', ADAPTER, '--data', TINYSTORIES_VAL, '--paragraphs', String(EVAL.paragraphs), '--max-tokens', String(EVAL.maxTokens), '--backend', 'js', '--json']);
  lap('adaptkit eval');
  assert.is(r.code, 0, r.stderr);
  const fromCli = JSON.parse(r.stdout.trim().split('\n').pop()!) as { loss: number; tokens: number };
  console.log(`eval: page ${onPage.loss} on ${onPage.backend}, CLI ${fromCli.loss} on js (${fromCli.tokens} tokens)`);
  assert.is(onPage.tokens, fromCli.tokens);
  assert.ok(Math.abs(onPage.loss - fromCli.loss) <= 1e-4 * fromCli.loss, `page ${onPage.loss} vs CLI ${fromCli.loss}`);
  const base = cli(['eval', '--model', STORIES_GGUF, '--data', TINYSTORIES_VAL, '--paragraphs', String(EVAL.paragraphs), '--max-tokens', String(EVAL.maxTokens), '--backend', 'js', '--json']);
  const baseLoss = (JSON.parse(base.stdout.trim().split('\n').pop()!) as { loss: number }).loss;
  assert.ok(Math.abs(baseLoss - fromCli.loss) > 1e-3, 'the adapter did not change the eval loss: was it applied?');
  await page.screenshot({ path: join(OUT, 'demo.png'), fullPage: true });
  lap('base eval, screenshot');
});

test('the adapter loads back from its two files and generates what the trained model did', async () => {
  const { samples: { after }, errors } = await demo();
  await page.fill('#prompt', '');
  await page.setInputFiles('#adapter-files', [join(ADAPTER, 'adapter_config.json'), join(ADAPTER, 'adapter_model.safetensors')]);
  const d = await idle();
  lap('load the adapter back, generate');
  assert.equal(d.errors.slice(errors.length), []);
  assert.is(d.samples.generated, after);
});

test('a broken model file shows a readable error and the page stays usable', async () => {
  const errors = (await demo()).errors.length;
  await page.setInputFiles('#model-files', { name: 'broken.gguf', mimeType: 'application/octet-stream', buffer: Buffer.from('GGUF\x03\x00\x00\x00 not really a model', 'latin1') });
  const d = await idle();
  assert.is(d.errors.length, errors + 1, JSON.stringify(d.errors));
  assert.match(d.errors.at(-1)!, /Loading the model failed: .*broken\.gguf/);
  assert.ok(await page.isVisible('#error'), 'the error is not shown');
  assert.is(d.model?.source, 'stories260K.gguf', 'the loaded model was lost');
  await page.click('#error-close');
  await page.click('#generate');
  const g = await idle();
  assert.is(g.errors.length, errors + 1, JSON.stringify(g.errors));
  assert.ok((g.samples.generated ?? '').length > 20);
  lap('bad file, recover');
});

test('a run that will not fit is refused before it starts, with the estimate and what would fit; the next run works', async () => {
  const { errors, runs } = await demo();
  await page.selectOption('#backend', 'wasm');
  await page.fill('#steps', '2');
  await page.fill('#batch', '65536');
  await page.fill('#seq', '512');
  await page.click('#train');
  const d = await idle();
  assert.is(d.errors.length, errors.length + 1, JSON.stringify(d.errors));
  assert.match(d.errors.at(-1)!, /^This run will not fit on wasm: .*Would fit: .*--checkpointing --batch \d+/);
  assert.is(d.runs.length, runs.length, 'a run started');
  assert.match(d.estimate?.text ?? '', /GiB on wasm: weights .*activations/);
  assert.ok(await page.isVisible('#advice'), 'the advice is not shown');
  await page.fill('#batch', '1');
  await page.fill('#seq', '32');
  await page.click('#train');
  const ok = await idle();
  assert.is(ok.runs.at(-1)!.status, 'done');
  assert.is(ok.errors.length, errors.length + 1);
  assert.not.ok(await page.isVisible('#advice'), 'the advice stays after a run that fits');
  lap('refused run, recover');
});

test('pause holds training between steps; resume continues; stop ends early and keeps the adapter', async () => {
  // The js backend at 4 × 64 tokens takes a few hundred milliseconds a step: time to click in between.
  await page.selectOption('#backend', 'js');
  await page.fill('#steps', '12');
  await page.fill('#batch', '4');
  await page.fill('#seq', '64');
  await page.click('#train');
  const stepsNow = async (): Promise<number> => (await demo()).runs.at(-1)!.losses.length;
  await page.waitForFunction(() => ((globalThis as unknown as { adaptkitDemo: DemoState }).adaptkitDemo.runs.at(-1)?.losses.length ?? 0) >= 2, null, { polling: 20 });
  await page.click('#pause');
  await page.waitForFunction(() => (globalThis as unknown as { adaptkitDemo: DemoState }).adaptkitDemo.runs.at(-1)?.status === 'paused', null, { polling: 20 });
  const held = await stepsNow();
  await page.waitForTimeout(600);
  assert.is(await stepsNow(), held, 'training went on while paused');
  assert.is(await page.textContent('#pause'), 'Resume');
  await page.click('#pause');
  await page.waitForFunction((n) => ((globalThis as unknown as { adaptkitDemo: DemoState }).adaptkitDemo.runs.at(-1)?.losses.length ?? 0) >= n, held + 2, { polling: 20 });
  await page.click('#stop');
  const d = await idle();
  lap('pause, resume, stop (js)');
  const run = d.runs.at(-1)!;
  assert.is(run.status, 'stopped');
  assert.ok(run.losses.length > held + 1 && run.losses.length < 12, `${run.losses.length} steps`);
  assert.ok(await page.isVisible('#download-adapter-model'), 'a stopped run offers its adapter');
});

test('Force stop ends the engine mid-run; a fresh one starts, reloads the model and works', async () => {
  await page.fill('#steps', '500');
  await page.click('#train');
  await page.waitForFunction(() => ((globalThis as unknown as { adaptkitDemo: DemoState }).adaptkitDemo.runs.at(-1)?.losses.length ?? 0) >= 1, null, { polling: 20 });
  await page.click('#stop');
  assert.is(await page.textContent('#stop'), 'Force stop');
  await page.click('#stop');
  await page.waitForFunction(() => {
    const d = (globalThis as unknown as { adaptkitDemo: DemoState }).adaptkitDemo;
    return d.model && !d.busy;
  }, null, { polling: 50 });
  const d = await demo();
  assert.is(d.runs.at(-1)!.status, 'failed');
  assert.match(d.errors.at(-1)!, /force-stopped.*restarted and the model is loading again/);
  assert.is(d.model!.source, 'stories260K.gguf');
  await page.click('#generate');
  const g = await idle();
  assert.ok((g.samples.generated ?? '').startsWith('Once upon a time'), g.samples.generated);
  lap('force stop, restart');
});

test('base weights f16 stores the served model compact when it loads from its URL', async () => {
  await page.selectOption('#base-dtype', 'f16');
  await page.click('#load-url');
  const d = await idle();
  lap('load the URL as f16');
  assert.is(d.model?.source, 'stories260K.gguf', d.errors.at(-1));
  assert.match(d.model!.dtypes, /f16 × \d+/);
  assert.ok(d.model!.weightBytes < 0.6 * d.model!.parameters * 4, `${d.model!.weightBytes} bytes for ${d.model!.parameters} parameters`);
});

test('a Q8_0 GGUF picked as a file loads compact and trains on wasm with checkpointing; the loss falls', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'adaptkit-demo-'));
  try {
    const file = join(dir, 'stories260K-q8_0.gguf');
    writeFileSync(file, checkpointToGguf(await loadCheckpoint(STORIES_GGUF, { baseDtype: 'q8_0' })));
    await page.selectOption('#base-dtype', 'auto');
    await page.setInputFiles('#model-files', file);
    const m = await idle();
    assert.is(m.model?.source, 'stories260K-q8_0.gguf', m.errors.at(-1));
    assert.match(m.model!.dtypes, /q8_0 × \d+/);
    // Kept compact: a Q8_0 weight is 1.125 bytes an element, the f32 norms a small part.
    assert.ok(m.model!.weightBytes < 0.4 * m.model!.parameters * 4, `${m.model!.weightBytes} bytes for ${m.model!.parameters} parameters`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await page.check('#checkpointing');
  const run = await trainRun('wasm').finally(() => lap('load Q8_0 file, train on wasm'));
  assert.is(run.status, 'done', `the run ${run.status}: ${run.error}`);
  assert.is(run.losses.length, STEPS);
  assert.ok(run.losses[STEPS - 1]! < 0.5 * run.losses[0]!, `loss ${run.losses[0]} → ${run.losses[STEPS - 1]}`);
  const d = await demo();
  assert.match(d.estimate?.text ?? '', /on wasm: weights [\d.]+ KiB/);
  assert.match(await page.textContent('#estimate') ?? '', /Memory estimate: .* wasm limits: /);
  assert.match(d.samples.after ?? '', /dragon named Pip/);
});

test('no uncaught errors in the page', () => {
  assert.equal(pageErrors, []);
});

test.run();
