/**
 * Loading benchmark: peak RSS and seconds to load the synthetic dim-512, 8-layer, 32k-vocabulary Llama
 * from an F32 GGUF on disk (232 MB) with each base dtype, read a tensor at a time; the baseline, measured in
 * the same run, is the same load with the whole file read into memory first. Each load runs in a fresh
 * process so its peak RSS is its own.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isCompactTensor, loadCheckpoint } from '../src/formats/checkpoint.js';
import { checkpointToGguf } from '../src/formats/gguf-llama.js';
import { SYNTH_512, syntheticCheckpoint } from './models.js';

const CHILD = 'ADAPTKIT_BENCH_LOAD';

/** Run this file in a fresh process for one job; its stdout. (Linux keeps a parent's peak RSS across exec, so the parent stays small.) */
function inChild(job: Record<string, unknown>): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
    encoding: 'utf8', env: { ...process.env, [CHILD]: JSON.stringify(job) }, maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`load bench child failed: ${r.stderr}`);
  return r.stdout;
}

/** In the child: load once, print {seconds, weightsMiB, peakMiB}. */
async function child(path: string, baseDtype: string, whole: boolean): Promise<void> {
  const t0 = performance.now();
  const ck = await loadCheckpoint(whole ? new Uint8Array(readFileSync(path)) : path, { baseDtype: baseDtype as never, name: path });
  const seconds = (performance.now() - t0) / 1000;
  let bytes = 0;
  for (const t of ck.tensors.values()) bytes += isCompactTensor(t) ? t.bytes.length : t.data.byteLength;
  process.stdout.write(JSON.stringify({ seconds, weightsMiB: bytes / 2 ** 20, peakMiB: process.resourceUsage().maxRSS / 1024 }));
}

export async function benchLoad(o: { json: boolean }): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'adaptkit-bench-load-'));
  try {
    const path = join(dir, 'synthetic-512.gguf');
    inChild({ write: path });
    const rows: [string, boolean][] = [['q8_0', true], ['auto', false], ['f16', false], ['q8_0', false], ['q4_0', false]];
    for (const [baseDtype, whole] of rows) {
      const m = JSON.parse(inChild({ path, baseDtype, whole })) as { seconds: number; weightsMiB: number; peakMiB: number };
      const read = whole ? 'whole file in memory' : 'by offset';
      console.log(o.json
        ? JSON.stringify({ bench: 'load', model: 'synthetic-512 F32 GGUF', read, baseDtype, ...m })
        : `${`${baseDtype}, ${read}`.padEnd(32)} ${m.seconds.toFixed(2)} s, weights ${m.weightsMiB.toFixed(0)} MiB, peak RSS ${m.peakMiB.toFixed(0)} MiB`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env[CHILD]) {
  const job = JSON.parse(process.env[CHILD]) as { write?: string; path: string; baseDtype: string; whole: boolean };
  if (job.write) writeFileSync(job.write, checkpointToGguf(syntheticCheckpoint(SYNTH_512)));
  else await child(job.path, job.baseDtype, job.whole);
}
