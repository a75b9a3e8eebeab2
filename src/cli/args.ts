/** Command-line flags: `--name value`, `--name=value`, `--flag` for booleans. Unknown flags are errors. */

export interface FlagSpec {
  /** 'string' | 'number' | 'int' | 'bool' */
  type: 'string' | 'number' | 'int' | 'bool';
  help: string;
  default?: string | number | boolean;
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
    if (s.type === 'string') { out[name] = raw; continue; }
    const n = Number(raw);
    if (!Number.isFinite(n) || (s.type === 'int' && !Number.isInteger(n))) throw new UsageError(`--${name} must be ${s.type === 'int' ? 'an integer' : 'a number'} (got '${raw}')`);
    out[name] = n;
  }
  return out;
}

export function usage(command: string, summary: string, spec: Readonly<Record<string, FlagSpec>>): string {
  const lines = Object.entries(spec).map(([k, s]) => {
    const v = s.type === 'bool' ? '' : ` ${s.type === 'string' ? 'TEXT' : 'N'}`;
    const d = s.default !== undefined ? ` (default ${s.default})` : '';
    return `  --${k}${v}`.padEnd(30) + `${s.help}${d}`;
  });
  return `adaptkit ${command}: ${summary}\n\n${lines.join('\n')}\n`;
}

export function need(flags: Flags, name: string, command: string): string {
  const v = flags[name];
  if (v === undefined || v === '') throw new UsageError(`--${name} is required; see 'adaptkit ${command} --help'`);
  return String(v);
}
