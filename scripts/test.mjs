// Runs every uvu test file under test/ (TypeScript through tsx), each in its own process, and ends with
// one plain summary line, `N passed, N failed` (`, N skipped` when some were skipped), that CI and people
// can read. Exit code 1 when anything failed.
//
// A failure is counted from what failed, never inferred from the other counts: a test that failed (uvu's
// Total − Passed, which also catches a `before` hook that threw and left its tests unrun), and a file
// that crashed, exited non-zero, stopped before uvu's summary or ran no test at all. `.only` in a test
// file is fatal: it silently turns every other test of that file into a skip.
//
// Usage: node scripts/test.mjs [--root DIR] [--suffix .test.ts] [dir-or-pattern…]  (files whose path contains any pattern)
//   --root    folder searched for test files (default test)
//   --suffix  how a test file's name ends (default .test.ts)
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const args = process.argv.slice(2);
let root = 'test', suffix = '.test.ts';
const filters = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--root' || a === '--suffix') {
    const v = args[++i];
    if (v === undefined) fail(`${a} needs a value`);
    if (a === '--root') root = v; else suffix = v;
  } else if (a.startsWith('--')) {
    fail(`unknown option ${a} (options: --root DIR, --suffix .test.ts)`);
  } else {
    filters.push(a);
  }
}
function fail(message) {
  console.error(`scripts/test.mjs: ${message}`);
  process.exit(2);
}
try {
  if (!statSync(root).isDirectory()) fail(`--root ${root} is not a folder`);
} catch {
  fail(`--root ${root} does not exist`);
}

/** Every file under dir whose name ends with `end`, in a stable order. `fixtures` folders below the root hold suites that fail on purpose. */
function walk(dir, end) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'fixtures' && name !== 'node_modules') out.push(...walk(p, end));
    } else if (name.endsWith(end)) out.push(p);
  }
  return out;
}

// `x.only(` outside a comment, in any TypeScript file of the suite (a helper can register tests too).
const ONLY = /\.only\s*\(/;
function usesOnly(file) {
  const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
  return ONLY.test(code);
}
const withOnly = walk(root, '.ts').filter(usesOnly);
const files = walk(root, suffix).filter((p) => filters.length === 0 || filters.some((f) => p.includes(f)));

/** uvu's closing block: the last one printed, so a test's own output cannot be mistaken for it. */
function summary(text) {
  const all = [...text.matchAll(/Total:\s+(\d+)\s*\n\s*Passed:\s+(\d+)\s*\n\s*Skipped:\s+(\d+)/g)];
  const m = all[all.length - 1];
  return m ? { total: Number(m[1]), passed: Number(m[2]), skipped: Number(m[3]) } : null;
}

/** Names of the failed tests, from uvu's ` FAIL  [suite]  "name"` headers. */
const failedNames = (text) => [...text.matchAll(/^\s*FAIL\s+(.*)$/gm)].map((m) => m[1].trim());

let passed = 0, failed = 0, skipped = 0;
const broken = [];
for (const file of withOnly) {
  failed++;
  broken.push(file);
  process.stdout.write(`\n--- ${file}: uses .only, which skips every other test of its file; remove it\n`);
}
if (files.length === 0) {
  failed++;
  console.log(`no test file under ${root} ends with ${suffix}${filters.length ? ` and contains ${filters.map((f) => `'${f}'`).join(' or ')}` : ''}`);
}
for (const file of files) {
  // One process per file: a crash or a leaked handle in one file cannot hide the others' results.
  const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', '--import', 'tsx', file], {
    encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' }, maxBuffer: 64 << 20,
  });
  const text = (r.stdout ?? '') + (r.stderr ?? '');
  const s = summary(text);
  const problems = [];
  if (r.error) problems.push(`could not run: ${r.error.message}`);
  if (r.status !== 0) problems.push(r.signal ? `killed by ${r.signal}` : `exit code ${r.status}`);
  if (!s) problems.push('no uvu summary (crashed or stopped early)');
  else if (s.total === 0) problems.push('ran no test');
  const bad = s ? s.total - s.passed : 0;
  if (bad > 0) problems.push(`${bad} failed: ${failedNames(text).join(', ') || 'a hook failed before its tests ran'}`);
  passed += s?.passed ?? 0;
  skipped += s?.skipped ?? 0;
  const skipNote = s?.skipped ? `, ${s.skipped} skipped` : '';
  if (problems.length) {
    failed += Math.max(bad, 1);
    broken.push(file);
    process.stdout.write(`\n--- ${relative('.', file).split(sep).join('/')}: ${problems.join('; ')}\n${text}\n`);
  } else {
    process.stdout.write(`${file}: ${s.passed} passed${skipNote}\n`);
  }
}
if (broken.length) console.log(`\nfailing files: ${broken.join(', ')}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
