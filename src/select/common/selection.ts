/** What a selector returns: the kept items (indices in input order), a human report and a machine summary. */
export interface Selection {
  method: string;
  /** Indices of the kept items, ascending (their original order). */
  kept: number[];
  /** Lines saying what was kept and why. */
  report: string[];
  /** The same in numbers, for --json. */
  summary: Record<string, unknown>;
}

export function checkKeep(keep: number, n: number): void {
  if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`keep must be a positive integer, got ${keep}`);
  if (keep > n) throw new RangeError(`keep = ${keep} is more than the ${n} examples in the data`);
}
