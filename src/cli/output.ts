/**
 * Output folders that survive a crash. Every file is written under a temporary name, synced, then renamed
 * over its final name, so a reader sees the old file or the new one, never a part. A checkpoint is a whole
 * folder written the same way: its files go into a hidden temporary folder beside it, which is renamed to
 * `checkpoint-N` last, so a checkpoint exists whole or not at all. (POSIX rename is atomic within a
 * file system; a process killed mid-write leaves only a hidden temporary that the next run removes.)
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { TRAINING_STATE_FILE } from '../train/training-state.js';
import { UsageError } from './args.js';

export const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'] as const;
/** What a complete checkpoint folder holds. */
export const CHECKPOINT_FILES = [...ADAPTER_FILES, TRAINING_STATE_FILE] as const;
const CHECKPOINT_DIR = /^checkpoint-(\d+)$/;
/** Temporaries start with a dot and carry the writer's pid, so they are never taken for a checkpoint. */
const TEMPORARY = /^\..+\.partial-\d+(\.old)?$/;

export type FileWriter = (path: string, data: Uint8Array | string) => Promise<void>;

/** Write and sync a file (the data reaches the disk before the rename that publishes it). */
export const syncedWrite: FileWriter = async (path, data) => {
  const h = await open(path, 'w');
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
};

const temporaryName = (path: string): string => join(dirname(path), `.${basename(path)}.partial-${process.pid}`);

/** Replace `path` whole: write a temporary beside it, then rename. */
export async function writeFileAtomic(path: string, data: Uint8Array | string, write: FileWriter = syncedWrite): Promise<void> {
  const tmp = temporaryName(path);
  try {
    await write(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Create folder `dir` holding `files`, all or nothing: the files go into a hidden temporary folder that is
 * renamed to `dir` last. An existing `dir` is replaced (moved aside, then removed once the new one is in place).
 */
export async function writeFolderAtomic(dir: string, files: readonly (readonly [string, Uint8Array | string])[], write: FileWriter = syncedWrite): Promise<void> {
  const tmp = temporaryName(dir);
  await rm(tmp, { recursive: true, force: true });
  try {
    await mkdir(tmp, { recursive: true });
    for (const [name, data] of files) await write(join(tmp, name), data);
    if (existsSync(dir)) {
      const old = `${tmp}.old`;
      await rename(dir, old);
      await rename(tmp, dir);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, dir);
    }
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

export interface CheckpointDir { step: number; dir: string; complete: boolean }

/** The `checkpoint-N` folders of an output folder, oldest first; `complete` when every checkpoint file is there. */
export function checkpointDirs(out: string): CheckpointDir[] {
  if (!existsSync(out) || !statSync(out).isDirectory()) return [];
  const found: CheckpointDir[] = [];
  for (const name of readdirSync(out)) {
    const m = CHECKPOINT_DIR.exec(name);
    if (!m) continue;
    const dir = join(out, name);
    if (!statSync(dir).isDirectory()) continue;
    found.push({ step: Number(m[1]), dir, complete: CHECKPOINT_FILES.every((f) => isNonEmptyFile(join(dir, f))) });
  }
  return found.sort((a, b) => a.step - b.step);
}

function isNonEmptyFile(p: string): boolean {
  try { const s = statSync(p); return s.isFile() && s.size > 0; } catch { return false; }
}

/**
 * What `--resume PATH` resumes from: PATH itself when it is a checkpoint, else the newest complete
 * checkpoint in it (an output folder written with --checkpoint-every). Incomplete ones (left by versions
 * that wrote in place) are passed over.
 */
export function resolveResume(path: string): { dir: string; note?: string } {
  if (!existsSync(path)) throw new UsageError(`--resume ${path}: no such folder`);
  if (!statSync(path).isDirectory()) throw new UsageError(`--resume ${path}: not a folder (pass a checkpoint folder or the --out folder holding them)`);
  if (existsSync(join(path, TRAINING_STATE_FILE))) return { dir: path };
  const all = checkpointDirs(path);
  if (all.length === 0) throw new Error(`${path}: not a checkpoint written by --checkpoint-every (missing ${TRAINING_STATE_FILE}) and holds no checkpoint-N folder`);
  const complete = all.filter((c) => c.complete);
  const newest = complete[complete.length - 1];
  if (!newest) throw new Error(`${path}: none of its ${all.length} checkpoint folders is complete (each needs ${CHECKPOINT_FILES.join(', ')})`);
  const skipped = all.filter((c) => !c.complete && c.step > newest.step).map((c) => basename(c.dir));
  return { dir: newest.dir, note: `newest complete of ${all.length} checkpoints${skipped.length ? `; passed over incomplete ${skipped.join(', ')}` : ''}` };
}

/** What of ours an output folder already holds (adapter files and checkpoints). */
function existingOutput(out: string): string[] {
  if (!existsSync(out)) return [];
  if (!statSync(out).isDirectory()) throw new UsageError(`--out ${out}: exists and is not a folder`);
  return [...ADAPTER_FILES.filter((f) => existsSync(join(out, f))), ...checkpointDirs(out).map((c) => `${basename(c.dir)}/`)];
}

const inside = (path: string, dir: string): boolean => {
  const p = resolve(path), d = resolve(dir);
  return p === d || p.startsWith(`${d}/`);
};

export interface OutputOptions {
  /** Replace what `out` holds (--overwrite). */
  overwrite: boolean;
  /** The checkpoint folder the run resumes from, if any. */
  resumeDir?: string;
}

/**
 * Refuse, before any work, an `out` that already holds an adapter or checkpoints, unless `overwrite`, or
 * unless the run resumes from a checkpoint inside it (it continues that run there).
 */
export function checkOutput(out: string, o: OutputOptions): void {
  const present = existingOutput(out);
  const continuing = o.resumeDir !== undefined && inside(o.resumeDir, out);
  if (present.length && !o.overwrite && !continuing) {
    throw new UsageError(`--out ${out} already holds an adapter (${present.slice(0, 4).join(', ')}${present.length > 4 ? ', …' : ''}); pass --overwrite to replace it, or another --out`);
  }
}

/**
 * What to remove before the first step: with `overwrite`, the old adapter and every checkpoint; when the run
 * continues from a checkpoint inside `out`, the old final adapter and the checkpoints after the resumed step
 * (the continued run writes its own).
 */
function staleOutput(out: string, o: OutputOptions & { resumeStep?: number }): string[] {
  const continuing = o.resumeDir !== undefined && inside(o.resumeDir, out);
  if (!o.overwrite && !continuing) return [];
  const keepUpTo = continuing ? o.resumeStep ?? 0 : -1;
  return [
    ...ADAPTER_FILES.map((f) => join(out, f)).filter(existsSync),
    ...checkpointDirs(out).filter((c) => c.step > keepUpTo && !(o.resumeDir !== undefined && inside(o.resumeDir, c.dir))).map((c) => c.dir),
  ];
}

/**
 * Make the output folder ready before step 1: create it, prove it is writable, remove what is stale and
 * temporaries left by a killed run. An error names --out.
 */
export async function prepareOutput(out: string, o: OutputOptions & { resumeStep?: number }): Promise<void> {
  try {
    await mkdir(out, { recursive: true });
    await writeFileAtomic(join(out, '.write-test'), '');
    await rm(join(out, '.write-test'), { force: true });
  } catch (e) {
    throw new Error(`--out ${out}: cannot write there (${(e as Error).message})`);
  }
  for (const p of staleOutput(out, o)) await rm(p, { recursive: true, force: true });
  for (const name of readdirSync(out)) if (TEMPORARY.test(name)) await rm(join(out, name), { recursive: true, force: true });
}
