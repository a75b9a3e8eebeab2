/** This library's side of the reference comparisons: float64 logits of a model with its adapters, and `adaptkit eval`'s loss for a saved folder. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { loadPeft } from '../../src/adapters/peft.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { batchAt } from '../../src/data/dataset.js';
import type { LlamaCheckpoint } from '../../src/formats/checkpoint.js';
import * as F from '../../src/graph/api.js';
import { Graph } from '../../src/graph/graph.js';
import { buildModel } from '../../src/model/families.js';
import { uploadWeights } from '../../src/model/runtime.js';
import { Session } from '../../src/scheduler/session.js';
import { heroBlocks } from '../methods/helpers.js';

/** `batch` held-out hero-story rows of `seq` tokens: ids as one array and as rows, with their targets. */
export function heldOut(ckpt: LlamaCheckpoint, batch: number, seq: number): { ids: Int32Array; rows: number[][]; targets: number[][] } {
  const held = batchAt(heroBlocks(ckpt, seq, 4, 99), 0, batch);
  const rows = (a: Int32Array) => Array.from({ length: batch }, (_, b) => Array.from(a.subarray(b * seq, b * seq + seq)));
  return { ids: held.ids, rows: rows(held.ids), targets: rows(held.targets) };
}

/** Logits [B, T, V] of the real positions (virtual tokens dropped), from our graph on the float64 js backend. */
export async function logitsF64(model: AdaptedModel, ids: Int32Array, batch: number, seq: number): Promise<Float64Array> {
  const g = new Graph();
  const { hooks } = model.hooks({ training: false });
  const net = buildModel(g, model.base.config, { batch, seq, hooks });
  const logits = net.virtualTokens ? F.slice(net.logits, 1, net.virtualTokens, net.virtualTokens + seq) : net.logits;
  g.markOutput(logits);
  const s = await Session.create(g, createJsBackend({ precision: 'f64' }));
  uploadWeights(s, net.weights, model.effectiveCheckpoint());
  model.uploadAdapterParams(s);
  s.set(net.ids, ids);
  await s.run();
  const out = Float64Array.from(await s.get(logits));
  s.dispose();
  return out;
}

/** As `adaptkit eval --adapter FOLDER`: the folder loaded onto `ckpt`, mean cross-entropy on float32 js. */
export async function evalFolder(ckpt: LlamaCheckpoint, folder: string, rows: number[][], targets: number[][]): Promise<{ loss: number; tokens: number }> {
  const model = new AdaptedModel(ckpt);
  loadPeft(model, 'eval', { config: readFileSync(join(folder, 'adapter_config.json'), 'utf8'), weights: readFileSync(join(folder, 'adapter_model.safetensors')) }, folder);
  const rt = model.runtime(createJsBackend());
  const r = await rt.evalTargets(rows, targets, { batch: rows.length, seq: rows[0]!.length });
  rt.dispose();
  return r;
}

/** Largest |a − b| over two equally long arrays. */
export function maxGap(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`${a.length} values against ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
