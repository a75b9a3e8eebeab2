/**
 * The [core] transformer-block training run on js, wasm and webgpu from the same seed, as check results
 * (each backend's curve against js, relative difference ≤ 1e-4 at every step). Runs in Node, Deno and
 * browser pages alike, so every runtime checks the same thing.
 */
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { createWasmBackend } from '../../src/backends/wasm/index.js';
import { trainTransformerBlock } from '../../src/toy/tasks.js';
import type { CaseResult } from '../webgpu/op-cases.js';

export const CURVE_TOL = 1e-4;

export async function blockCurveResults(webgpu: Backend, steps = 50): Promise<CaseResult[]> {
  const ref = (await trainTransformerBlock(createJsBackend(), { steps })).losses;
  const wasm = await createWasmBackend();
  const out: CaseResult[] = [];
  for (const [name, backend] of [['wasm', wasm], ['webgpu', webgpu]] as const) {
    const { losses, trainer } = await trainTransformerBlock(backend, { steps });
    trainer.dispose();
    const worst = Math.max(...losses.map((x, i) => Math.abs(x - ref[i]!) / Math.abs(ref[i]!)));
    const fell = losses[steps - 1]! < losses[0]! * 0.7;
    out.push({ name: `transformer block, ${steps} steps: ${name} loss curve vs js`, ok: worst <= CURVE_TOL && fell, worst, tol: CURVE_TOL, detail: `max relative difference ${worst.toExponential(2)}; loss ${losses[0]!.toFixed(3)} → ${losses[steps - 1]!.toFixed(3)}` });
  }
  wasm.dispose();
  return out;
}
