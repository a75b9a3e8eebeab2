// Mutation testing of the numerical core with Stryker: each module's code is mutated and only the test
// files that cover it run against each mutant (Stryker's command runner), one module after another.
// Prints the mutation score per module and every surviving mutant; exit code 1 when a mutant survives.
// On demand, not in CI: `npm run mutation` (every module) or `npm run mutation -- adamw schedule`.
//
// Stryker mutates the files in place and restores them when it ends: the tests read ../shared/assets
// relative to the repository, which a sandbox copy would not find. So leave src/ alone during a run.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { Stryker } from '@stryker-mutator/core';

/**
 * `file:a-b`, the lines from the first matching `from` to the first matching `to` after it, so the
 * ranges follow the code as it moves.
 */
function span(file, from, to) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const a = lines.findIndex((l) => from.test(l));
  const b = a < 0 ? -1 : lines.findIndex((l, i) => i >= a && to.test(l));
  if (a < 0 || b < 0) throw new Error(`mutation: ${file} has no lines from ${from} to ${to}; update scripts/mutation.mjs`);
  return `${file}:${a + 1}-${b + 1}`;
}

const LORA = 'src/adapters/lora';
const MODULES = [
  {
    name: 'lora-scaling',
    what: 'LoRA scaling alpha/r and alpha/√r: forward, merge, DoRA, embedding, PiSSA and its export',
    mutate: [
      span(`${LORA}/config.ts`, /^export function loraScaling/, /^}/),
      span(`${LORA}/layer.ts`, /^export function loraDelta/, /^}/),
      span(`${LORA}/layer.ts`, /if \(c\.init === 'pissa'\)/, /onBaseChange\(m\.name, residual\)/),
      // loraLinear without its dropout line: dropout is not scaling (test/train/training-state.test.ts
      // trains with it); the scaling test runs the layer in eval mode, where that line is a no-op.
      span(`${LORA}/layer.ts`, /^export function loraLinear/, /const A = module\.kind === 'linear'/),
      span(`${LORA}/layer.ts`, /return ctx\.graph\.within\(`\$\{module\.name\}\.lora`/, /^}/),
      span(`${LORA}/layer.ts`, /^export function mergeLora/, /^}/),
      span(`${LORA}/index.ts`, /exportParams\(/, /^  },/),
    ],
    tests: ['test/lora/scaling.test.ts'],
  },
  {
    name: 'peft',
    what: 'PEFT folder keys and Hugging Face orientation of q_proj/k_proj rows (src/adapters/peft.ts)',
    // The keys and orientation only: the adapter's own tensors (reorient), whole base tensors
    // (modules_to_save, base_layer.weight) and replaced embedding rows, both ways. Reading the config
    // (JSON, PEFT's module matching, huggingFaceModelId, checkPeftSizes) is checked against PEFT's own rules
    // in peft-interchange.test.ts and the CLI tests, and is no arithmetic on tensors.
    mutate: [
      span('src/adapters/peft.ts', /^const LORA_OUTPUT_ROWS/, /^function transpose2d/),
      span('src/adapters/peft.ts', /^function transpose2d/, /^}/),
      span('src/adapters/peft.ts', /^function orientBaseTensor/, /^}/),
      span('src/adapters/peft.ts', /^export function savePeft/, /^}/),
      span('src/adapters/peft.ts', /\/\/ The other tensors a folder may hold/, /^}/),
    ],
    // peft.test.ts first: it kills most mutants, and `&&` stops at the first failing file.
    tests: ['test/lora/peft.test.ts', 'test/lora/peft-interchange.test.ts'],
  },
  {
    name: 'adamw',
    what: 'the js AdamW kernel and the trainer\'s step: learning rate, clipping, accumulation, defaults',
    mutate: [
      'src/backends/js/kernels/adamw.ts',
      span('src/train/trainer.ts', /const o = spec\.optimizer/, /}, accumulate, spec\.beforeUpdate\);/),
      span('src/train/trainer.ts', /async step\(/, /return \{ step: this\.stepCount/),
    ],
    tests: ['test/train/adamw.test.ts', 'test/train/trainer.test.ts'],
  },
  {
    name: 'losses',
    what: 'the cross_entropy op (shape rules, gradient rule) and its js kernels',
    mutate: [
      span('src/graph/ops/nn.ts', /^function ceShapes/, /^}\);/),
      span('src/graph/ops/nn.ts', /name: 'cross_entropy_backward'/, /^}\);/),
      span('src/backends/js/kernels/nn.ts', /^function counted/, /^const crossEntropyBackward/),
      span('src/backends/js/kernels/nn.ts', /^const crossEntropyBackward/, /^};/),
    ],
    tests: ['test/core/cross-entropy.test.ts'],
  },
  {
    name: 'schedule',
    what: 'learning-rate warmup and decay (src/train/schedule.ts)',
    mutate: ['src/train/schedule.ts'],
    tests: ['test/train/schedule.test.ts'],
  },
];

const wanted = process.argv.slice(2);
for (const w of wanted) {
  if (!MODULES.some((m) => m.name === w)) {
    console.error(`mutation: unknown module '${w}' (modules: ${MODULES.map((m) => m.name).join(', ')})`);
    process.exit(2);
  }
}
const modules = wanted.length ? MODULES.filter((m) => wanted.includes(m.name)) : MODULES;

const line = (r) => `${r.name.padEnd(13)} ${r.score.toFixed(1).padStart(5)}%  ${r.detected} detected, ${r.undetected} survived, ${r.ignored} disabled as equivalent${r.invalid ? `, ${r.invalid} invalid` : ''}  (${r.minutes.toFixed(1)} min)`;
const DETECTED = new Set(['Killed', 'Timeout']);
const UNDETECTED = new Set(['Survived', 'NoCoverage']);
const rows = [];
let survivors = 0;
for (const m of modules) {
  const started = Date.now();
  console.log(`\n=== ${m.name}: ${m.what}\n    mutating ${m.mutate.join(', ')}`);
  const stryker = new Stryker({
    mutate: m.mutate,
    testRunner: 'command',
    // Each test file in a process of its own, as scripts/test.mjs runs it; a failing file (uvu exits 1,
    // or the file crashes) kills the mutant.
    commandRunner: { command: m.tests.map((t) => `node --experimental-wasm-relaxed-simd --import tsx ${t}`).join(' && ') },
    inPlace: true,
    // tsx strips types without checking them, so mutated files need no `// @ts-nocheck`; in place,
    // adding it would rewrite every file of the project for the run.
    disableTypeChecks: false,
    // Two mutants at a time, one per core (each test run is a single-threaded node process). A mutant
    // that loops forever (`i++` → `i--` in a kernel's loop) is cut off after twice the unmutated run
    // plus 5 s, and counts as detected; an unmutated run takes 1–3 s, and the unmutated run it is timed
    // on also compiles the instrumented files, so a mutant that merely runs slower on a busy machine is
    // not mistaken for one that never ends.
    concurrency: 2,
    timeoutMS: 5000,
    timeoutFactor: 2,
    reporters: ['clear-text', 'progress-append-only'],
    clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: false },
    fileLogLevel: 'off',
    logLevel: 'warn',
    incremental: false,
    tempDirName: '.stryker-tmp',
  });
  const results = await stryker.runMutationTest();
  const count = (set) => results.filter((r) => set.has(r.status)).length;
  const detected = count(DETECTED), undetected = count(UNDETECTED);
  const ignored = results.filter((r) => r.status === 'Ignored').length;
  const invalid = results.filter((r) => r.status === 'CompileError' || r.status === 'RuntimeError').length;
  const score = detected + undetected ? (100 * detected) / (detected + undetected) : 100;
  survivors += undetected;
  rows.push({ name: m.name, score, detected, undetected, ignored, invalid, minutes: (Date.now() - started) / 60000 });
  console.log(`  ${line(rows[rows.length - 1])}`);
  for (const r of results.filter((x) => UNDETECTED.has(x.status))) {
    console.log(`  ${r.status.toLowerCase()}: ${relative(process.cwd(), r.fileName)}:${r.location.start.line} ${r.mutatorName} → ${JSON.stringify(r.replacement)}`);
  }
}

console.log('\nmutation score per module (detected / valid mutants; equivalent mutants disabled in the source are left out):');
for (const r of rows) console.log(`  ${line(r)}`);
process.exit(survivors > 0 ? 1 : 0);
