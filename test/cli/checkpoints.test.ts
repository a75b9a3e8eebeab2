// Crash-safe outputs: a checkpoint exists whole or not at all (a writer that fails after one file, and a
// process killed with SIGKILL while it writes), `--resume OUT` picks the newest complete checkpoint and
// still ends byte for byte where the uninterrupted run ends, and `--out` is checked before step 1.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CHECKPOINT_FILES, checkpointDirs, type FileWriter, resolveResume, syncedWrite, writeFolderAtomic } from '../../src/cli/output.js';
import { STORIES_GGUF } from '../assets.js';
import { cli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-ckpt-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The error a promise rejects with (fails when it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try { await p; } catch (e) { return e as Error; }
  throw new assert.Assertion({ message: 'expected a rejection', operator: 'rejects', expects: 'a rejection', actual: 'a value', generated: false });
}
const files = (n: number) => CHECKPOINT_FILES.map((f) => [f, `checkpoint ${n} ${f}`] as const);

test('a writer that fails after the first file leaves no checkpoint folder; the previous one stays and is the one resumed', async () => {
  const out = join(dir, 'fail');
  mkdirSync(out);
  await writeFolderAtomic(join(out, 'checkpoint-1'), files(1));
  let written = 0;
  const failing: FileWriter = async (p, d) => {
    if (written++ === 1) throw new Error('disk full');
    await syncedWrite(p, d);
  };
  assert.match((await rejection(writeFolderAtomic(join(out, 'checkpoint-2'), files(2), failing))).message, /disk full/);
  assert.equal(readdirSync(out), ['checkpoint-1'], 'neither checkpoint-2 nor a temporary is left');
  assert.is(resolveResume(out).dir, join(out, 'checkpoint-1'));
  // Replacing an existing checkpoint that fails half-way keeps the old one whole.
  written = 0;
  assert.match((await rejection(writeFolderAtomic(join(out, 'checkpoint-1'), files(9), failing))).message, /disk full/);
  assert.is(readFileSync(join(out, 'checkpoint-1', 'adapter_config.json'), 'utf8'), 'checkpoint 1 adapter_config.json');
});

test('an incomplete checkpoint folder (as older versions left) is passed over by --resume OUT', async () => {
  const out = join(dir, 'old');
  mkdirSync(out);
  await writeFolderAtomic(join(out, 'checkpoint-2'), files(2));
  mkdirSync(join(out, 'checkpoint-3'));
  writeFileSync(join(out, 'checkpoint-3', 'adapter_config.json'), '{}');
  mkdirSync(join(out, 'checkpoint-4'));
  const r = resolveResume(out);
  assert.is(r.dir, join(out, 'checkpoint-2'));
  assert.match(r.note!, /passed over incomplete checkpoint-3, checkpoint-4/);
});

test('kill -9 while checkpoints are being written: every visible checkpoint is whole', async () => {
  const size = 4 << 20;
  let midWrite = 0;
  for (let attempt = 0; attempt < 8 && midWrite < 3; attempt++) {
    const out = join(dir, `kill-${attempt}`);
    mkdirSync(out);
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/cli/checkpoint-writer.ts', out, String(size)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let lines = '';
    child.stdout.on('data', (d) => { lines += d; });
    // Wait for two whole checkpoints and the start of the next write, then kill at a random moment of it.
    while ((lines.split('\n').length < 3 || !readdirSync(out).some((n) => n.startsWith('.'))) && child.exitCode === null) await sleep(1);
    await sleep(Math.random() * 10);
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await exited;
    const names = readdirSync(out);
    if (names.some((n) => n.startsWith('.'))) midWrite++;
    const ckpts = checkpointDirs(out);
    assert.ok(ckpts.length >= 2);
    for (const c of ckpts) {
      assert.ok(c.complete, `${c.dir} is incomplete`);
      CHECKPOINT_FILES.forEach((f, k) => {
        const bytes = readFileSync(join(c.dir, f));
        assert.is(bytes.length, size, `${c.dir}/${f} has ${bytes.length} bytes`);
        assert.ok(bytes.every((b) => b === (c.step + k) % 251), `${c.dir}/${f} holds another checkpoint's bytes`);
      });
    }
    assert.is(resolveResume(out).dir, ckpts[ckpts.length - 1]!.dir);
  }
  // The kills must have hit writes in progress (a temporary left behind), or the test proved nothing.
  assert.ok(midWrite >= 1, 'no kill landed during a write');
});

const trainArgs = ['train', '--model', STORIES_GGUF, '--steps', '12', '--batch', '2', '--seq', '16', '--dropout', '0.1', '--backend', 'wasm', '--json'];

test('train killed mid-run with --checkpoint-every 1, resumed with --resume OUT: the adapter equals the uninterrupted run\'s', async () => {
  const full = join(dir, 'train-full'), killed = join(dir, 'train-killed');
  const a = cli([...trainArgs, '--out', full]);
  assert.is(a.code, 0, a.stderr);
  const child = spawn(process.execPath, ['--experimental-wasm-relaxed-simd', '--import', 'tsx', 'src/cli/main.ts', ...trainArgs, '--out', killed, '--checkpoint-every', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let events = '';
  child.stdout.on('data', (d) => { events += d; });
  while (!events.includes('"step":4,') && child.exitCode === null) await sleep(2);
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await exited;
  const ckpts = checkpointDirs(killed);
  assert.ok(ckpts.length >= 3, `${ckpts.length} checkpoints`);
  assert.ok(ckpts.every((c) => c.complete));
  assert.not.ok(existsSync(join(killed, 'adapter_model.safetensors')), 'the run was killed before its end');
  const b = cli([...trainArgs, '--out', killed, '--resume', killed]);
  assert.is(b.code, 0, b.stderr);
  const newest = ckpts[ckpts.length - 1]!.step;
  const steps = b.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => 'step' in e && !('event' in e)).map((e) => e.step);
  assert.is(steps[0], newest + 1, 'resumed after the newest checkpoint');
  for (const f of ['adapter_model.safetensors', 'adapter_config.json']) {
    assert.ok(readFileSync(join(full, f)).equals(readFileSync(join(killed, f))), `${f} differs`);
  }
});

test('--out onto an existing adapter is refused (nothing changed) unless --overwrite, which clears the old checkpoints', () => {
  const out = join(dir, 'train-existing');
  const first = cli([...trainArgs, '--steps', '2', '--out', out, '--checkpoint-every', '1']);
  assert.is(first.code, 0, first.stderr);
  const before = readFileSync(join(out, 'adapter_model.safetensors'));
  const again = cli([...trainArgs, '--steps', '1', '--out', out]);
  assert.is(again.code, 2);
  assert.match(again.stderr, /--out .*train-existing already holds an adapter \(adapter_config\.json, adapter_model\.safetensors, checkpoint-1\/, checkpoint-2\/\); pass --overwrite/);
  assert.not.match(again.stdout, /"step"/);
  assert.ok(readFileSync(join(out, 'adapter_model.safetensors')).equals(before));
  const over = cli([...trainArgs, '--steps', '1', '--out', out, '--overwrite']);
  assert.is(over.code, 0, over.stderr);
  assert.equal(checkpointDirs(out), [], 'the old checkpoints are gone');
  assert.not.ok(readFileSync(join(out, 'adapter_model.safetensors')).equals(before));
});

test('--out that cannot be created fails before step 1, naming --out', () => {
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  const r = cli([...trainArgs, '--out', join(file, 'adapter')]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /--out .*a-file\/adapter: cannot write there/);
  assert.not.match(r.stdout, /"step"/);
  assert.ok(statSync(file).isFile());
});

test.run();
