/**
 * `adaptkit train --method fedins`: FedIns simulated in one process. The examples of --data are split into
 * --clients contiguous shards (each client's last eighth held out), an SSF pool (src/adapters/ssf-pool) is
 * trained by federated averaging (src/federated/fedavg.ts: --rounds rounds of --local-steps steps per
 * client), one central model is trained on all the clients' training rows for the same number of steps in
 * total, and each client's held-out loss is printed for the base, the federated and the central model.
 */
import { AdaptedModel } from '../adapters/adapted-model.js';
import { getMethod } from '../adapters/registry.js';
import { type Example, pack } from '../data/dataset.js';
import { blocksLoss, federatedTrain } from '../federated/fedavg.js';
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import type { ChosenBackend } from '../scheduler/backends.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { fineTune } from '../train/finetune.js';
import { type Flags, UsageError } from './args.js';
import { checkOutput, prepareOutput } from './output.js';

export interface FedinsDeps {
  openTextModel(f: Flags): Promise<{ ckpt: LlamaCheckpoint; tok: Tokenizer }>;
  openBackend(f: Flags, quiet?: boolean): Promise<ChosenBackend>;
  loadExamples(spec: string, tok: Tokenizer, seq: number, quiet?: boolean): Promise<{ examples: Example[]; source: string }>;
  methodConfig(f: Flags): Record<string, unknown>;
  writePeftDir(model: AdaptedModel, dir: string, base: string): Promise<void>;
  err(line: string): void;
}

export async function trainFedinsCommand(f: Flags, deps: FedinsDeps): Promise<void> {
  if (f.out === undefined) throw new UsageError('train needs --out DIR');
  const out = String(f.out), json = Boolean(f.json);
  const N = Number(f.clients ?? 4), rounds = Number(f.rounds ?? 5), local = Number(f['local-steps'] ?? 10);
  const seq = Number(f.seq), batch = Number(f.batch), seed = Number(f.seed), lr = f.lr !== undefined ? Number(f.lr) : undefined;
  // The pool's options are checked before anything is read.
  const config = getMethod('ssf-pool').parseConfig(deps.methodConfig(f));
  checkOutput(out, { overwrite: Boolean(f.overwrite) });
  const { ckpt, tok } = await deps.openTextModel(f);
  const { examples, source } = await deps.loadExamples(String(f.data), tok, seq);
  if (examples.length < 2 * N) throw new UsageError(`--data ${source}: ${examples.length} examples for ${N} clients; each needs at least 2 (one to train on, one held out)`);
  const train: Example[][] = [], held: Example[][] = [];
  for (let c = 0; c < N; c++) {
    const part = examples.slice(Math.floor((c * examples.length) / N), Math.floor(((c + 1) * examples.length) / N));
    const h = Math.max(1, Math.floor(part.length / 8));
    train.push(part.slice(0, part.length - h));
    held.push(part.slice(part.length - h));
  }
  const shards = train.map((e) => pack(e, seq, 0)), heldOut = held.map((e) => pack(e, seq, 0));
  if (!json) deps.err(`data: ${source}: ${N} clients, ${shards.map((s, c) => `${s.rows}+${heldOut[c]!.rows}`).join(', ')} rows (train+held out)`);
  const chosen = await deps.openBackend(f, json);
  const make = (): AdaptedModel => { const m = new AdaptedModel(ckpt); m.addAdapter('default', 'ssf-pool', config as unknown as Record<string, unknown>, { seed }); return m; };
  const fed = await federatedTrain({
    makeModel: make, adapter: 'default', backend: chosen.backend, shards, rounds, localSteps: local, batch, seed, ...(lr !== undefined ? { lr } : {}),
    onRound: (r, _c, _g, losses) => { if (!json) deps.err(`round ${r + 1}/${rounds}: client losses ${losses.map((l) => l[l.length - 1]!.toFixed(4)).join(', ')}`); },
  });
  // The central model sees every client's training rows, for the federation's total number of steps.
  const central = make();
  const all = pack(train.flat(), seq, 0);
  await (await fineTune({ model: central, adapter: 'default', backend: chosen.backend, data: all, steps: rounds * local * N, batch, decay: 'constant', seed, ...(lr !== undefined ? { lr } : {}) })).run.syncAdapter();
  const base = new AdaptedModel(ckpt);
  const rows: { client: number; base: number; federated: number; central: number; tokens: number }[] = [];
  for (let c = 0; c < N; c++) {
    const [b, fd, ce] = [await blocksLoss(base, heldOut[c]!, chosen.backend, batch), await blocksLoss(fed, heldOut[c]!, chosen.backend, batch), await blocksLoss(central, heldOut[c]!, chosen.backend, batch)];
    rows.push({ client: c, base: b.loss, federated: fd.loss, central: ce.loss, tokens: fd.tokens });
  }
  if (json) process.stdout.write(`${JSON.stringify({ event: 'fedins', clients: rows })}\n`);
  else {
    process.stdout.write('client  held-out tokens  base     federated  central\n');
    for (const r of rows) process.stdout.write(`${String(r.client).padEnd(8)}${String(r.tokens).padEnd(17)}${r.base.toFixed(4).padEnd(9)}${r.federated.toFixed(4).padEnd(11)}${r.central.toFixed(4)}\n`);
  }
  await prepareOutput(out, { overwrite: Boolean(f.overwrite) });
  await deps.writePeftDir(fed, out, String(f.model));
  if (!json) deps.err(`saved the global SSF pool to ${out}/`);
  chosen.backend.dispose();
}
