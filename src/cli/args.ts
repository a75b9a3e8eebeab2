/**
 * Command-line flags: `--name value`, `--name=value`, `--flag` for booleans. Unknown flags are errors.
 * Each flag declares what it accepts (a range, a file or folder, a limit that depends on the model), and
 * every value, given or default, is checked before the command does any work.
 */
import { existsSync, statSync } from 'node:fs';
import type { LlamaConfig } from '../formats/checkpoint.js';
import { describeRange, inRange, type Range } from '../util/ranges.js';

export interface FlagSpec {
  /** 'string' | 'number' | 'int' | 'bool' */
  type: 'string' | 'number' | 'int' | 'bool';
  help: string;
  default?: string | number | boolean;
  /** Accepted values (numbers; or strings with `oneOf`); checked as the flags are parsed. */
  range?: Range;
  /** The value names a file or a folder that must exist (`except`: values that name something else, e.g. 'builtin'). */
  path?: { kind: 'file' | 'folder'; except?: readonly string[] };
  /**
   * A limit that depends on the model, checked once it is loaded and before any other work: returns what is
   * wrong with the value, or undefined.
   */
  limit?: (value: string | number, flags: Flags, model: LlamaConfig) => string | undefined;
  /** A string flag that may be given several times; the values are kept joined by newlines (see `many`). */
  multiple?: boolean;
}

export type Flags = Record<string, string | number | boolean | undefined>;

export class UsageError extends Error {
  constructor(message: string) { super(message); this.name = 'UsageError'; }
}

/** `extra` accepts flags outside `spec` (an adapter method's own options); they are kept as strings. */
export function parseFlags(argv: readonly string[], spec: Readonly<Record<string, FlagSpec>>, command: string, extra?: (name: string) => boolean): Flags {
  const out: Flags = {};
  for (const [k, s] of Object.entries(spec)) if (s.default !== undefined) out[k] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument '${arg}' (flags start with --)`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const s = spec[name] ?? (extra?.(name) ? { type: 'string' as const, help: '' } : undefined);
    if (!s) {
      const near = Object.keys(spec).filter((k) => k.includes(name) || name.includes(k));
      throw new UsageError(`unknown option --${name}${near.length ? ` (did you mean --${near[0]}?)` : ''}; see 'adaptkit ${command} --help'`);
    }
    let raw: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (s.type === 'bool') {
      out[name] = raw === undefined ? true : raw === 'true' || raw === '1';
      continue;
    }
    if (raw === undefined) {
      raw = argv[++i];
      if (raw === undefined) throw new UsageError(`--${name} needs a value`);
    }
    if (s.type === 'string') { out[name] = s.multiple && typeof out[name] === 'string' && out[name] !== s.default ? `${out[name]}\n${raw}` : raw; continue; }
    const n = Number(raw);
    if (!Number.isFinite(n) || (s.type === 'int' && !Number.isInteger(n))) throw new UsageError(`--${name} must be ${s.type === 'int' ? 'an integer' : 'a number'} (got '${raw}')`);
    out[name] = n;
  }
  for (const [name, s] of Object.entries(spec)) checkFlag(name, out[name], s);
  return out;
}

function checkFlag(name: string, v: Flags[string], s: FlagSpec): void {
  if (v === undefined || typeof v === 'boolean') return;
  if (s.range && !inRange(v, s.range)) throw new UsageError(`--${name} must be ${describeRange(s.range)} (got ${typeof v === 'string' ? `'${v}'` : v})`);
  if (s.multiple && typeof v === 'string') { for (const one of many(v)) checkFlag(name, one, { ...s, multiple: false }); return; }
  if (s.path && typeof v === 'string' && !s.path.except?.includes(v)) {
    if (!existsSync(v)) throw new UsageError(`--${name} ${v}: no such ${s.path.kind}`);
    const dir = statSync(v).isDirectory();
    if (dir && s.path.kind === 'file') throw new UsageError(`--${name} ${v}: is a folder, expected a file`);
    if (!dir && s.path.kind === 'folder') throw new UsageError(`--${name} ${v}: is a file, expected a folder`);
  }
}

/** The values of a flag given several times (`multiple`). */
export function many(v: Flags[string]): string[] {
  return typeof v === 'string' ? v.split('\n') : [];
}

/** Check the flags whose limits depend on the model (after it is loaded, before any other work). */
export function checkModelLimits(flags: Flags, spec: Readonly<Record<string, FlagSpec>>, model: LlamaConfig): void {
  for (const [name, s] of Object.entries(spec)) {
    const v = flags[name];
    if (!s.limit || v === undefined || typeof v === 'boolean') continue;
    const problem = s.limit(v, flags, model);
    if (problem) throw new UsageError(`--${name} ${v}: ${problem}`);
  }
}

export function usage(command: string, summary: string, spec: Readonly<Record<string, FlagSpec>>): string {
  const lines = Object.entries(spec).map(([k, s]) => {
    const v = s.type === 'bool' ? '' : ` ${s.type === 'string' ? 'TEXT' : 'N'}`;
    const d = [s.default !== undefined ? `default ${s.default}` : '', s.range && !s.range.oneOf ? describeRange(s.range) : ''].filter(Boolean).join('; ');
    return `  --${k}${v}`.padEnd(30) + `${s.help}${d ? ` (${d})` : ''}`;
  });
  return `adaptkit ${command}: ${summary}\n\n${lines.join('\n')}\n`;
}

export function need(flags: Flags, name: string, command: string): string {
  const v = flags[name];
  if (v === undefined || v === '') throw new UsageError(`--${name} is required; see 'adaptkit ${command} --help'`);
  return String(v);
}
