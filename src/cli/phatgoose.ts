/**
 * `adaptkit train --method phatgoose --experts DIR`: every PEFT LoRA folder in DIR is an expert; each gets
 * its gate trained with the expert frozen on its own data where its folder holds a gate-data file
 * (GATE_DATA_FILES; the paper's setting) and on --data otherwise (--gate-steps, default 100), and the experts with their
 * gates are saved as one PHATGOOSE folder that eval and generate --adapter route token by token.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Adapter, AdaptedModel } from '../adapters/adapted-model.js';
import type { PhatgooseConfig } from '../adapters/phatgoose/config.js';
import { attachPhatgoose, inventoryOf, trainGates } from '../adapters/phatgoose/inventory.js';
import { pack, type Example, type PackedBlocks } from '../data/dataset.js';
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import type { ChosenBackend } from '../scheduler/backends.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { type Flags, UsageError } from './args.js';
import { checkOutput, prepareOutput } from './output.js';

export interface PhatgooseDeps {
  openTextModel(f: Flags): Promise<{ ckpt: LlamaCheckpoint; tok: Tokenizer }>;
  openBackend(f: Flags, quiet?: boolean): Promise<ChosenBackend>;
  loadExamples(spec: string, tok: Tokenizer, seq: number, quiet?: boolean): Promise<{ examples: Example[]; source: string }>;
  readAdapterDir(model: AdaptedModel, dir: string, name: string): Promise<unknown>;
  writePeftDir(model: AdaptedModel, dir: string, base: string): Promise<void>;
  err(line: string): void;
}

/** An expert folder holding one of these trains that expert's gate on it instead of --data (first found wins). */
export const GATE_DATA_FILES = ['gate-data.jsonl', 'gate-data.txt'] as const;

/**
 * eval/generate --route-top-k K: route a PHATGOOSE adapter with K experts per token instead of its saved
 * top_k (the gates do not depend on k, so one trained folder serves every k). Refused for other adapters
 * and for K above the inventory.
 */
export function routeTopK(f: Flags, adapter: Adapter): void {
  if (f['route-top-k'] === undefined) return;
  const k = Number(f['route-top-k']);
  if (adapter.method.name !== 'phatgoose') throw new UsageError(`--route-top-k goes with a PHATGOOSE --adapter (this one is ${adapter.method.name})`);
  const c = adapter.config as PhatgooseConfig;
  if (k > c.experts.length) throw new UsageError(`--route-top-k ${k} exceeds the ${c.experts.length} experts of ${String(f.adapter)}`);
  // Read when the graph is built, so setting it before the runtime is made routes every forward with k.
  c.topK = k;
}

/** A number flag of the method's options (they arrive as strings), checked before any work. */
function option(f: Flags, name: string, fallback: number, ok: (v: number) => boolean, rule: string): number {
  if (f[name] === undefined) return fallback;
  const v = Number(f[name]);
  if (!ok(v)) throw new UsageError(`--${name} ${String(f[name])}: must be ${rule}`);
  return v;
}

export async function trainPhatgooseCommand(f: Flags, deps: PhatgooseDeps): Promise<void> {
  if (f.experts === undefined) throw new UsageError('--method phatgoose needs --experts DIR (a folder of PEFT LoRA folders, one per expert)');
  if (f.out === undefined) throw new UsageError('train needs --out DIR');
  const dir = String(f.experts), out = String(f.out);
  const gateSteps = option(f, 'gate-steps', 100, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  const temperature = option(f, 'temperature', 0, (v) => v >= 0 && Number.isFinite(v), 'a number ≥ 0 (0: 1/√in at each module, the reference\'s scale)');
  const topK = option(f, 'top-k', 2, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  checkOutput(out, { overwrite: Boolean(f.overwrite) });
  if (!existsSync(dir)) throw new UsageError(`--experts ${dir}: no such folder`);
  const subs = (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'adapter_config.json'))).map((d) => d.name).sort();
  if (subs.length === 0) throw new UsageError(`--experts ${dir}: no PEFT adapter folders in it (subfolders with adapter_config.json)`);
  if (topK > subs.length) throw new UsageError(`--top-k ${topK} exceeds the ${subs.length} experts in ${dir}`);
  // Experts of different bases cannot share one: refused by the base each folder names, before any loading.
  const bases = new Map<string, string>();
  for (const s of subs) {
    const cfg = JSON.parse(await readFile(join(dir, s, 'adapter_config.json'), 'utf8')) as { base_model_name_or_path?: unknown };
    if (typeof cfg.base_model_name_or_path === 'string' && cfg.base_model_name_or_path) bases.set(s, cfg.base_model_name_or_path);
  }
  const baseNames = [...new Set(bases.values())];
  if (baseNames.length > 1) {
    const [a, b] = baseNames.map((n) => [...bases].find(([, v]) => v === n)![0]);
    throw new UsageError(`--experts ${dir}: experts of different base models ('${a}' on ${bases.get(a!)}, '${b}' on ${bases.get(b!)}); all must adapt the same base`);
  }
  const { ckpt, tok } = await deps.openTextModel(f);
  const inventory = new AdaptedModel(ckpt);
  const names = subs.map((s) => s.replace(/[^A-Za-z0-9_-]/g, '_'));
  if (new Set(names).size !== names.length) throw new UsageError(`--experts ${dir}: expert folder names collide once made safe (${names.join(', ')})`);
  for (const [i, s] of subs.entries()) await deps.readAdapterDir(inventory, join(dir, s), names[i]!);
  const experts = names.map((n) => inventory.get(n));
  const inv = inventoryOf(experts);
  deps.err(`experts: ${inv.experts.map((e) => `${e.name} (rank ${e.r})`).join(', ')} on ${inv.modules.length} modules`);
  const seq = Number(f.seq);
  const packed = async (spec: string, what: string): Promise<PackedBlocks> => {
    const { examples, source } = await deps.loadExamples(spec, tok, seq);
    const blocks = pack(examples, seq, 0);
    if (blocks.rows === 0) throw new UsageError(`${what} ${source}: no rows to train the gates on`);
    return blocks;
  };
  const own = subs.map((s) => GATE_DATA_FILES.map((n) => join(dir, s, n)).find((p) => existsSync(p)));
  const data = new Map<string, PackedBlocks>();
  let shared: PackedBlocks | undefined;
  for (const [i, name] of names.entries()) {
    const file = own[i];
    if (file) data.set(name, await packed(file, `expert '${name}' gate data`));
    else data.set(name, shared ??= await packed(String(f.data), '--data'));
    deps.err(`gate ${name}: trained on ${file ?? `--data ${String(f.data)}`}`);
  }
  const chosen = await deps.openBackend(f);
  const gates = await trainGates(() => new AdaptedModel(ckpt), experts, {
    backend: chosen.backend, data, steps: gateSteps, batch: Number(f.batch), seed: Number(f.seed), ...(f.lr !== undefined ? { lr: Number(f.lr) } : {}),
    onExpert: (name, losses) => deps.err(`gate ${name}: ${gateSteps} steps, loss ${losses[0]!.toFixed(4)} → ${losses[losses.length - 1]!.toFixed(4)}`),
  });
  const routed = new AdaptedModel(ckpt);
  attachPhatgoose(routed, 'default', experts, { mode: 'route', topK, temperature, gates });
  await prepareOutput(out, { overwrite: Boolean(f.overwrite) });
  await deps.writePeftDir(routed, out, String(f.model));
  deps.err(`saved ${experts.length} experts with their gates (top-${topK} routing) to ${out}/`);
  chosen.backend.dispose();
}
