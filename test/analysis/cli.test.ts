// `adaptkit analyze` on stories260K with a rank-2 LoRA trained by `adaptkit train` (12 steps): the table and the
// --json file agree, and match a float64 PyTorch reference (test/reference/intruder_ref.py: merge, SVDs, cosines,
// effective rank written from the paper's definition) on every module: each top-k vector's max |cos| within
// 1e-4 (our weights are merged in float32, the reference's in float64), the same intruders wherever a cosine
// is not within 1e-4 of ε, ΔW's effective rank within 1e-3 (float32 rounding noise in our ΔW) and its
// numerical rank 2. The base model itself as a Hugging Face folder (--tuned, its Q/K rows in the other rotary
// order than the GGUF base) has ΔW = 0: no intruder anywhere. Bad input is refused before any work.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadCheckpoint } from '../../src/formats/checkpoint.js';
import { STORIES_GGUF } from '../assets.js';
import { cli } from '../cli/run.js';
import { runReference, writeHfModel } from '../reference/python.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-analyze-'));
const adapter = join(dir, 'lora');
const hfBase = join(dir, 'base-hf');

interface ModuleJson { module: string; layer: number; kind: string; shape: number[]; k: number; intruders: number[]; maxCosine: number[]; deltaEffectiveRank: number; deltaRank: number; relativeChange: number }
interface AnalysisJson { k: number; epsilon: number; totals: { total: number; byLayer: Record<string, number>; byKind: Record<string, number> }; modules: ModuleJson[] }
interface Reference { modules: { module: string; maxCosine: number[]; intruders: number[]; effectiveRank: number; rank: number }[] }

test('setup: a rank-2 LoRA on every projection, trained 12 steps; the base as a Hugging Face folder', async () => {
  const r = cli(['train', '--model', STORIES_GGUF, '--steps', '12', '--batch', '4', '--seq', '32', '--rank', '2', '--alpha', '4', '--lr', '2e-2', '--backend', 'wasm', '--out', adapter]);
  assert.is(r.code, 0, r.stderr);
  writeHfModel(await loadCheckpoint(STORIES_GGUF), hfBase);
});

test('analyze --adapter: table and JSON agree, and match the float64 PyTorch reference on every module', () => {
  const jsonPath = join(dir, 'analysis.json');
  const r = cli(['analyze', '--model', STORIES_GGUF, '--adapter', adapter, '--json', jsonPath]);
  assert.is(r.code, 0, r.stderr);
  const a = JSON.parse(readFileSync(jsonPath, 'utf8')) as AnalysisJson;
  assert.is(a.k, 10);
  assert.is(a.epsilon, 0.5);
  assert.is(a.modules.length, 35);
  assert.match(r.stdout, new RegExp(`total: ${a.totals.total} intruder dimensions? in 35 modules`));
  for (const m of a.modules) {
    const row = r.stdout.split('\n').find((l) => l.startsWith(`${m.module} `));
    assert.ok(row, `no table row for ${m.module}`);
    assert.match(row!, new RegExp(`${m.shape[0]}×${m.shape[1]}\\s+${m.intruders.length}\\b`));
    assert.equal(m.intruders, m.maxCosine.flatMap((c, j) => (c < a.epsilon ? [j] : [])));
  }
  assert.is(a.totals.total, a.modules.reduce((s, m) => s + m.intruders.length, 0));
  assert.ok(a.totals.total > 0, 'a rank-2 LoRA trained at lr 2e-2 makes intruders (the paper\'s finding)');

  const ref = runReference<Reference>('intruder_ref.py', { model: hfBase, adapter, k: a.k, epsilon: a.epsilon, modules: a.modules.map((m) => m.module) }, dir);
  let worstCos = 0, worstRank = 0;
  a.modules.forEach((m, i) => {
    const p = ref.modules[i]!;
    assert.is(p.module, m.module);
    assert.is(m.maxCosine.length, p.maxCosine.length);
    m.maxCosine.forEach((c, j) => {
      worstCos = Math.max(worstCos, Math.abs(c - p.maxCosine[j]!));
      assert.ok(Math.abs(c - p.maxCosine[j]!) <= 1e-4, `${m.module} vector ${j}: max |cos| ${c} vs ${p.maxCosine[j]}`);
      if (Math.abs(p.maxCosine[j]! - a.epsilon) > 1e-4) assert.is(m.intruders.includes(j), p.intruders.includes(j), `${m.module} vector ${j}`);
    });
    worstRank = Math.max(worstRank, Math.abs(m.deltaEffectiveRank - p.effectiveRank));
    assert.ok(Math.abs(m.deltaEffectiveRank - p.effectiveRank) <= 1e-3, `${m.module}: effective rank ${m.deltaEffectiveRank} vs ${p.effectiveRank}`);
    assert.is(p.rank, 2);
    assert.is(m.deltaRank, 2, m.module);
  });
  process.stderr.write(`analyze vs reference: max |cos| differs by ≤ ${worstCos.toExponential(1)}, effective rank by ≤ ${worstRank.toExponential(1)}\n`);
});

test('analyze --tuned with the base itself (another rotary row order): ΔW = 0, no intruder; --modules and --layers filter', () => {
  const jsonPath = join(dir, 'same.json');
  const r = cli(['analyze', '--model', STORIES_GGUF, '--tuned', hfBase, '--modules', 'q_proj,k_proj,down_proj', '--layers', '1,3', '--k', '4', '--json', jsonPath]);
  assert.is(r.code, 0, r.stderr);
  const a = JSON.parse(readFileSync(jsonPath, 'utf8')) as AnalysisJson;
  assert.equal(a.modules.map((m) => m.module), [1, 3].flatMap((l) => [`model.layers.${l}.self_attn.q_proj`, `model.layers.${l}.self_attn.k_proj`, `model.layers.${l}.mlp.down_proj`]));
  assert.is(a.totals.total, 0);
  for (const m of a.modules) {
    assert.is(m.k, 4);
    assert.is(m.deltaEffectiveRank, 0, m.module);
    m.maxCosine.forEach((c) => assert.ok(Math.abs(c - 1) < 1e-9, `${m.module}: ${c}`));
  }
  assert.match(r.stdout, /total: 0 intruder dimensions in 6 modules/);
});

test('bad input is refused, naming the problem', () => {
  const base = ['analyze', '--model', STORIES_GGUF];
  const cases: [string[], RegExp][] = [
    [[], /exactly one of --adapter DIR .* and --tuned DIR/],
    [['--adapter', adapter, '--tuned', hfBase], /exactly one of --adapter/],
    [['--tuned', adapter], /--tuned .*: not a model folder .*pass it as --adapter/],
    [['--adapter', adapter, '--k', '0'], /--k must be an integer ≥ 1 \(got 0\)/],
    [['--adapter', adapter, '--epsilon', '1.5'], /--epsilon must be a number in \(0, 1\] \(got 1.5\)/],
    [['--adapter', adapter, '--layers', '7'], /--layers 7: '7' is not a layer of this model \(it has 5: 0 to 4\)/],
    [['--adapter', adapter, '--modules', 'wq'], /no module to analyse: --modules wq/],
    [['--adapter', adapter, '--json', join(dir, 'missing', 'a.json')], /--json .*: the folder .*missing does not exist/],
    [['--adapter', join(dir, 'nope')], /--adapter .*nope: no such folder/],
  ];
  for (const [extra, message] of cases) {
    const r = cli([...base, ...extra]);
    assert.is(r.code, 2, `${extra.join(' ')}: exit ${r.code} ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});

test.run();
