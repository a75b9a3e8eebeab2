/**
 * Ranges of options, declared once beside the code that uses them (fineTune's, generate's) and checked
 * by the library entry points and the command line alike, before any work starts. An error names the
 * option, its range and the value given.
 */

export interface Range {
  readonly integer?: boolean;
  /** Inclusive lower bound. */
  readonly min?: number;
  /** Exclusive lower bound. */
  readonly above?: number;
  /** Inclusive upper bound. */
  readonly max?: number;
  /** Exclusive upper bound. */
  readonly below?: number;
  /** Allowed strings (the option is a string). */
  readonly oneOf?: readonly string[];
}

/** "an integer ≥ 1", "a number in (0, 1]", "one of cosine, linear, constant". */
export function describeRange(r: Range): string {
  if (r.oneOf) return `one of ${r.oneOf.join(', ')}`;
  const what = r.integer ? 'an integer' : 'a number';
  const low = r.above !== undefined ? { v: r.above, open: true } : r.min !== undefined ? { v: r.min, open: false } : undefined;
  const high = r.below !== undefined ? { v: r.below, open: true } : r.max !== undefined ? { v: r.max, open: false } : undefined;
  if (low && high) return `${what} in ${low.open ? '(' : '['}${low.v}, ${high.v}${high.open ? ')' : ']'}`;
  if (low) return `${what} ${low.open ? '>' : '≥'} ${low.v}`;
  if (high) return `${what} ${high.open ? '<' : '≤'} ${high.v}`;
  return what;
}

export function inRange(v: unknown, r: Range): boolean {
  if (r.oneOf) return typeof v === 'string' && r.oneOf.includes(v);
  if (typeof v !== 'number' || !Number.isFinite(v)) return false;
  if (r.integer && !Number.isInteger(v)) return false;
  if (r.min !== undefined && v < r.min) return false;
  if (r.above !== undefined && v <= r.above) return false;
  if (r.below !== undefined && v >= r.below) return false;
  return r.max === undefined || v <= r.max;
}

/** Throw `${label} must be <range> (got <value>)` when `v` is outside `r`. */
export function checkRange(label: string, v: unknown, r: Range): void {
  if (!inRange(v, r)) throw new RangeError(`${label} must be ${describeRange(r)} (got ${typeof v === 'string' ? `'${v}'` : String(v)})`);
}

/** Check every option of `o` that `ranges` declares and `o` sets; errors read `${where}: option '<name>' must be …`. */
export function checkOptions(where: string, o: Readonly<Record<string, unknown>>, ranges: Readonly<Record<string, Range>>): void {
  for (const [k, r] of Object.entries(ranges)) if (o[k] !== undefined) checkRange(`${where}: option '${k}'`, o[k], r);
}
