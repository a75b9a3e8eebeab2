/** JSONL reading shared by the data formats: one JSON object per non-blank line, errors naming file:line. */
import { DataError } from './dataset.js';

/** Calls `visit` with each line's object and its file:line; blank lines are skipped. Returns how many were visited. */
export function forEachJsonlObject(text: string, file: string, visit: (row: Record<string, unknown>, where: string) => void): number {
  let n = 0;
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    const where = `${file}:${i + 1}`;
    let row: unknown;
    try { row = JSON.parse(line); } catch (e) { throw new DataError(`${where}: not valid JSON (${(e as Error).message})`); }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new DataError(`${where}: each line must be a JSON object`);
    visit(row as Record<string, unknown>, where);
    n++;
  });
  return n;
}
