// The page side of the browser harness: the op checks of test/webgpu/op-cases.ts on the page's WebGPU
// (navigator.gpu), with the js backend as the oracle, then the transformer-block loss curves on js, wasm
// and webgpu. Results land in globalThis.__adaptkitOps.
import { createJsBackend } from '../../src/backends/js/index.js';
import { createWebgpuBackend } from '../../src/backends/webgpu/index.js';
import { blockCurveResults } from '../backends/block-curves.js';
import { cases, checkAdamw, checkCase, type CaseResult } from '../webgpu/op-cases.js';

interface PageReport { done: boolean; adapter: string; results: CaseResult[]; error?: string }

const report: PageReport = { done: false, adapter: '', results: [] };
(globalThis as unknown as { __adaptkitOps: PageReport }).__adaptkitOps = report;

async function main(): Promise<void> {
  const gpu = await createWebgpuBackend();
  const js = createJsBackend();
  report.adapter = gpu.describe();
  try {
    for (const c of cases) {
      try {
        report.results.push(await checkCase(gpu, js, c));
      } catch (e) {
        report.results.push({ name: c.name, ok: false, worst: NaN, tol: 0, detail: (e as Error).message });
      }
    }
    report.results.push(await checkAdamw(gpu, js));
    report.results.push(...(await blockCurveResults(gpu)));
  } finally {
    gpu.dispose();
  }
}

main().catch((e: Error) => { report.error = `${e.message}\n${e.stack ?? ''}`; }).finally(() => { report.done = true; });
