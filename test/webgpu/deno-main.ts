// Run under Deno by deno.test.ts: the op checks of op-cases.ts on Deno's own WebGPU (navigator.gpu), then
// the transformer-block loss curves on js, wasm and webgpu.
// Prints one line per case and a closing `N passed, N failed`; exits 1 when anything failed.
import { createJsBackend } from '../../src/backends/js/index.js';
import { createWebgpuBackend } from '../../src/backends/webgpu/index.js';
import { blockCurveResults } from '../backends/block-curves.js';
import { cases, checkAdamw, checkCase, type CaseResult } from './op-cases.js';

const gpu = await createWebgpuBackend();
const js = createJsBackend();
console.log(`# ${gpu.describe()}`);
const results: CaseResult[] = [];
const only = (globalThis as { Deno?: { args: string[] } }).Deno?.args ?? [];
for (const c of cases.filter((x) => only.length === 0 || only.some((o) => x.name.includes(o)))) {
  try {
    results.push(await checkCase(gpu, js, c));
  } catch (e) {
    results.push({ name: c.name, ok: false, worst: NaN, tol: 0, detail: (e as Error).message });
  }
  const r = results[results.length - 1]!;
  console.log(`${r.ok ? 'ok' : 'FAIL'} ${r.name}${r.ok ? '' : `: ${r.detail}`}`);
}
if (only.length === 0) {
  const r = await checkAdamw(gpu, js);
  results.push(r);
  console.log(`${r.ok ? 'ok' : 'FAIL'} ${r.name}${r.ok ? '' : `: ${r.detail}`}`);
  for (const c of await blockCurveResults(gpu)) {
    results.push(c);
    console.log(`${c.ok ? 'ok' : 'FAIL'} ${c.name}: ${c.detail}`);
  }
}
gpu.dispose();
const failed = results.filter((r) => !r.ok).length;
console.log(`deno: ${results.length - failed} passed, ${failed} failed`);
if (failed) (globalThis as unknown as { Deno: { exit(c: number): never } }).Deno.exit(1);
