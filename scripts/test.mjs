// Runs every uvu test file under test/ (TypeScript through tsx) and ends with one plain summary line,
// `N passed, N failed`, that CI and people can read. Exit code 1 when anything failed.
// Usage: node scripts/test.mjs [dir-or-pattern]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const filter = process.argv[2] ?? '';
function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...collect(p));
    else if (name.endsWith('.test.ts') && p.includes(filter)) out.push(p);
  }
  return out;
}

let passed = 0, failed = 0, skipped = 0;
const broken = [];
for (const file of collect('test')) {
  // One process per file: a crash or a leaked handle in one file cannot hide the others' results.
  const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', '--import', 'tsx', file], {
    encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' }, maxBuffer: 64 << 20,
  });
  const text = (r.stdout ?? '') + (r.stderr ?? '');
  const num = (label) => Number((text.match(new RegExp(`${label}:\\s+(\\d+)`)) ?? [])[1] ?? 0);
  const total = num('Total'), ok = num('Passed'), skip = num('Skipped');
  passed += ok; skipped += skip;
  const bad = total - ok - skip;
  if (r.status !== 0 || total === 0) {
    failed += Math.max(bad, 1);
    broken.push(file);
    process.stdout.write(`\n--- ${file} (exit ${r.status})\n${text}\n`);
  } else {
    failed += bad;
    process.stdout.write(`${file}: ${ok} passed\n`);
  }
}
if (broken.length) console.log(`\nfailing files: ${broken.join(', ')}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
