/**
 * `adaptkit train --method conpet --data FILE.jsonl`: a stream of tasks (each line's integer "task" field,
 * in order of first appearance), one LoRA module per task (--steps each), a selector retrained after every
 * task with a replay buffer of earlier examples (--replay-size), and after each task the held-out loss of
 * every task so far through the selector's routing; then the forgetting of each task.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { savePeft } from '../adapters/peft.js';
import { runConpet, type ConpetTask } from '../continual/conpet.js';
import type { Example } from '../data/dataset.js';
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import type { ChosenBackend } from '../scheduler/backends.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { type Flags, UsageError } from './args.js';
import { checkOutput, prepareOutput } from './output.js';

export interface ConpetDeps {
  openTextModel(f: Flags): Promise<{ ckpt: LlamaCheckpoint; tok: Tokenizer }>;
  openBackend(f: Flags, quiet?: boolean): Promise<ChosenBackend>;
  loadExamples(spec: string, tok: Tokenizer, seq: number, quiet?: boolean): Promise<{ examples: Example[]; source: string }>;
  err(line: string): void;
}

export async function trainConpetCommand(f: Flags, deps: ConpetDeps): Promise<void> {
  if (f.out === undefined) throw new UsageError('train needs --out DIR');
  const out = String(f.out), json = Boolean(f.json), seq = Number(f.seq);
  const replaySize = Number(f['replay-size'] ?? 32);
  checkOutput(out, { overwrite: Boolean(f.overwrite) });
  const { ckpt, tok } = await deps.openTextModel(f);
  const { examples, source } = await deps.loadExamples(String(f.data), tok, seq);
  const order: number[] = [];
  for (const e of examples) {
    if (e.task === undefined) throw new UsageError(`--data ${source}: --method conpet needs every line to have an integer "task" field (the stream's tasks)`);
    if (!order.includes(e.task)) order.push(e.task);
  }
  const tasks: ConpetTask[] = order.map((t) => {
    const all = examples.filter((e) => e.task === t), h = Math.max(1, Math.floor(all.length / 8));
    if (all.length < 2) throw new UsageError(`--data ${source}: task ${t} has ${all.length} example; each task needs at least 2 (one held out)`);
    return { name: String(t), train: all.slice(0, all.length - h), heldOut: all.slice(all.length - h) };
  });
  if (!json) deps.err(`data: ${source}: ${tasks.length} tasks in stream order ${tasks.map((t) => `${t.name} (${t.train.length}+${t.heldOut.length})`).join(', ')}`);
  const chosen = await deps.openBackend(f, json);
  const report = await runConpet(ckpt, tasks, {
    backend: chosen.backend, seq, steps: Number(f.steps), batch: Number(f.batch), seed: Number(f.seed), replaySize, ...(f.lr !== undefined ? { lr: Number(f.lr) } : {}),
    onTask: (t, r) => {
      if (json) process.stdout.write(`${JSON.stringify({ event: 'task', task: tasks[t]!.name, heldOutLoss: r.loss[t], routedToOwn: r.routed[t] })}\n`);
      else deps.err(`after task ${tasks[t]!.name}: held-out loss ${r.loss[t]!.map((l, j) => `${tasks[j]!.name} ${l.toFixed(4)} (${(100 * r.routed[t]![j]!).toFixed(0)}% routed to its module)`).join(', ')}`);
    },
  });
  if (json) process.stdout.write(`${JSON.stringify({ event: 'forgetting', tasks: tasks.map((t) => t.name), forgetting: report.forgetting, loss: report.loss })}\n`);
  else {
    process.stdout.write('task    loss after own  loss after last  forgetting\n');
    tasks.forEach((t, j) => process.stdout.write(`${t.name.padEnd(8)}${report.loss[j]![j]!.toFixed(4).padEnd(16)}${report.loss[tasks.length - 1]![j]!.toFixed(4).padEnd(17)}${report.forgetting[j]!.toFixed(4)}\n`));
  }
  // One PEFT LoRA folder per task module, named by the task.
  await prepareOutput(out, { overwrite: Boolean(f.overwrite) });
  for (const [j, t] of tasks.entries()) {
    const files = savePeft(report.model, `task${j}`, { baseModel: String(f.model) });
    await mkdir(join(out, `task-${t.name}`), { recursive: true });
    await writeFile(join(out, `task-${t.name}`, 'adapter_config.json'), files.config);
    await writeFile(join(out, `task-${t.name}`, 'adapter_model.safetensors'), files.weights);
  }
  if (!json) deps.err(`saved ${tasks.length} task modules to ${out}/task-<task>/ (PEFT LoRA folders)`);
  chosen.backend.dispose();
}
