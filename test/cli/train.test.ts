// The training job as users run it: the main job's before/after behaviour, checkpoint and resume, periodic
// evaluation, and models fetched from a URL into the cache (a local server on loopback; no network).
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSafetensors, safetensorsTensorToF32 } from '../../src/formats/safetensors.js';
import { HERO_MARKER } from '../../src/data/builtin-task.js';
import { STORIES_GGUF } from '../assets.js';
import { cli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-train-'));

test('the main job: before training the greedy sample is the usual girl named Lily, after it the new hero', () => {
  const r = cli(['quickstart', '--backend', 'wasm', '--steps', '30', '--out', join(dir, 'quick')]);
  assert.is(r.code, 0, r.stderr);
  const before = r.stdout.slice(r.stdout.indexOf('Before'), r.stdout.indexOf('step   1'));
  const after = r.stdout.slice(r.stdout.indexOf('After'));
  assert.match(before, /girl named Lily/);
  assert.not.match(before, new RegExp(HERO_MARKER));
  assert.match(after, new RegExp(HERO_MARKER));
  assert.ok(existsSync(join(dir, 'quick', 'adapter_model.safetensors')));
});

const weights = (d: string) => {
  const f = parseSafetensors(new Uint8Array(readFileSync(join(d, 'adapter_model.safetensors'))));
  return f.tensors.map((t) => Array.from(safetensorsTensorToF32(f, t)));
};

test('checkpoint every 2 steps, resume from step 2: the result equals an uninterrupted run; eval every 2 steps is reported', () => {
  const common = ['--model', STORIES_GGUF, '--steps', '4', '--batch', '2', '--seq', '32', '--dropout', '0.1', '--backend', 'wasm', '--json'];
  const full = cli(['train', ...common, '--out', join(dir, 'full'), '--checkpoint-every', '2', '--eval-data', 'builtin', '--eval-every', '2']);
  assert.is(full.code, 0, full.stderr);
  const events = full.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(events.filter((e) => e.event === 'eval').map((e) => e.step), [2, 4]);
  assert.equal(events.filter((e) => e.event === 'checkpoint').map((e) => e.step), [2, 4]);
  assert.ok(existsSync(join(dir, 'full', 'checkpoint-2', 'training_state.safetensors')));
  const resumed = cli(['train', ...common, '--out', join(dir, 'resumed'), '--resume', join(dir, 'full', 'checkpoint-2')]);
  assert.is(resumed.code, 0, resumed.stderr);
  assert.equal(resumed.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => 'step' in e && !('event' in e)).map((e) => e.step), [3, 4]);
  const [a, b] = [weights(join(dir, 'full')), weights(join(dir, 'resumed'))];
  a.forEach((t, i) => t.forEach((v, k) => assert.ok(Math.abs(v - b[i]![k]!) <= 1e-6 * Math.max(1, Math.abs(v)), `tensor ${i}[${k}]: ${v} vs ${b[i]![k]}`)));
});

test('--checkpointing gives the same losses and adapter bit for bit; --ce-chunk the same losses within 1e-6; a bad --ce-chunk is refused', () => {
  const common = ['--model', STORIES_GGUF, '--steps', '3', '--batch', '2', '--seq', '32', '--dropout', '0.1', '--backend', 'wasm', '--json'];
  const losses = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => 'step' in e && !('event' in e)).map((e) => e.loss as number);
  const runs = [[], ['--checkpointing'], ['--ce-chunk', '5', '--checkpointing']].map((extra, i) => {
    const r = cli(['train', ...common, ...extra, '--out', join(dir, `ckpt-${i}`)]);
    assert.is(r.code, 0, r.stderr);
    return { losses: losses(r.stdout), weights: weights(join(dir, `ckpt-${i}`)) };
  });
  assert.is(runs[0]!.losses.length, 3);
  assert.equal(runs[1]!.losses, runs[0]!.losses);
  assert.equal(runs[1]!.weights, runs[0]!.weights);
  runs[2]!.losses.forEach((l, i) => assert.ok(Math.abs(l - runs[0]!.losses[i]!) <= 1e-6 * runs[0]!.losses[i]!, `step ${i + 1}: ${l} vs ${runs[0]!.losses[i]}`));
  const bad = cli(['train', ...common, '--ce-chunk', 'many', '--out', join(dir, 'bad')]);
  assert.is(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--ce-chunk must be/);
});

test('a model given by URL is downloaded once into $ADAPTKIT_CACHE; an unreachable one says where to put the file', async () => {
  const body = readFileSync(STORIES_GGUF);
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    if (req.url === '/models/stories260K.gguf') { res.writeHead(200, { 'content-length': body.length }); res.end(body); } else { res.writeHead(404); res.end(); }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const cache = join(dir, 'cache');
  // The CLI runs in a child process while this one serves, so spawn asynchronously.
  const run = (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { env: { ...process.env, ADAPTKIT_CACHE: cache } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
  try {
    const url = `http://127.0.0.1:${port}/models/stories260K.gguf`;
    const a = await run(['generate', '--model', url, '--max-tokens', '8', '--backend', 'js']);
    assert.is(a.code, 0, a.stderr);
    assert.ok(a.stdout.startsWith('Once upon a time'));
    const b = await run(['generate', '--model', url, '--max-tokens', '8', '--backend', 'js']);
    assert.is(b.stdout, a.stdout);
    assert.is(hits, 1, 'the second run should use the cache');
    assert.ok(existsSync(join(cache, 'urls', `127.0.0.1:${port}`, 'models', 'stories260K.gguf')));
    const missing = await run(['generate', '--model', `http://127.0.0.1:${port}/nope.gguf`, '--backend', 'js']);
    assert.is(missing.code, 1);
    assert.match(missing.stderr, /HTTP 404.*Put the file at .*nope\.gguf/);
  } finally {
    server.close();
  }
});

test('train --dry-run prints the planned memory and whether it fits, trains nothing, and exits 1 with advice when it does not fit', () => {
  const ok = cli(['train', '--model', STORIES_GGUF, '--dry-run', '--backend', 'wasm', '--batch', '8', '--seq', '256']);
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /memory: [\d.]+ MiB on wasm: weights [\d.]+ MiB, activations [\d.]+ MiB, optimizer state/);
  assert.match(ok.stdout, /\nfits\n/);
  const big = cli(['train', '--model', STORIES_GGUF, '--dry-run', '--backend', 'wasm', '--batch', '4096', '--seq', '256', '--json']);
  assert.is(big.code, 1, big.stderr);
  const e = JSON.parse(big.stdout.trim().split('\n').pop()!);
  assert.is(e.fits, false);
  assert.ok(e.totalBytes > e.caps.totalBytes);
  assert.ok(e.wouldFit.length >= 1 && e.wouldFit.every((v: { totalBytes: number }) => v.totalBytes <= e.caps.totalBytes), big.stdout);
  assert.match(e.wouldFit[0].flags, /--checkpointing|--batch/);
});

test.run();
