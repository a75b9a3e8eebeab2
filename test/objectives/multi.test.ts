// Multi-objective training (src/objectives/multi): one objective is plain fine-tuning (the same loss
// curve, 1e-6 relative); with two, the first step's loss is w₁·L₁ + w₂·L₂ with each Lₖ evaluated separately
// before training (1e-5), each reported by name; the same curve on js, wasm and webgpu (1e-4); bad data
// and options are refused by name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { batchAt } from '../../src/data/dataset.js';
import { multiObjectiveData } from '../../src/objectives/multi/data.js';
import { trainMultiObjective } from '../../src/objectives/multi/train.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { fineTune } from '../../src/train/finetune.js';
import { curveDiff, js, otherBackends } from '../backends/backends.js';
import { stories } from '../methods/helpers.js';

const SEQ = 24;
const LINES = [
  { prompt: 'Tom had a red ball.', completion: ' He threw it to Lily.', rationale: ' He wanted to play with her.' },
  { prompt: 'The cat was hungry.', completion: ' It drank some milk.', rationale: ' Milk makes the cat happy.' },
  { prompt: 'Sue saw a big tree.', completion: ' She climbed it fast.', rationale: ' She liked to be up high.' },
  { prompt: 'The dog was wet.', completion: ' Mom dried him with a towel.', rationale: ' The rain made him wet.' },
].map((l) => JSON.stringify(l)).join('\n');

async function setup(fields: string[]) {
  const ckpt = await stories();
  const model = new AdaptedModel(ckpt);
  model.addAdapter('t', 'lora', { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 1 });
  return { model, data: multiObjectiveData(LINES, 'repair.jsonl', createTokenizer(ckpt.tokenizer!), SEQ, fields) };
}

const common = { steps: 4, batch: 2, lr: 1e-2, decay: 'constant' as const, warmup: 0, seed: 1 };

test('one objective is plain fine-tuning on the same rows: the same loss curve', async () => {
  const a = await setup(['completion']);
  const multi = (await trainMultiObjective({ model: a.model, adapter: 't', backend: js(), objectives: [{ name: 'completion', weight: 1, data: a.data.get('completion')! }], ...common })).steps;
  const b = await setup(['completion']);
  const plain = await fineTune({ model: b.model, adapter: 't', backend: js(), data: b.data.get('completion')!, ...common });
  const diff = curveDiff(plain.losses, multi.map((s) => s.loss));
  assert.ok(diff < 1e-6, `curves differ by ${diff}: ${plain.losses} vs ${multi.map((s) => s.loss)}`);
  assert.equal(Object.keys(multi[0]!.losses), ['completion']);
});

test('two objectives: the loss is w₁·L₁ + w₂·L₂, each Lₖ equal to its separate evaluation and reported by name', async () => {
  const { model, data } = await setup(['completion', 'rationale']);
  const rt = model.runtime(js());
  const separate: Record<string, number> = {};
  for (const name of ['completion', 'rationale']) {
    const b = batchAt(data.get(name)!, 0, 2);
    const rows = [0, 1].map((i) => Array.from(b.ids.subarray(i * SEQ, (i + 1) * SEQ)));
    const tg = [0, 1].map((i) => Array.from(b.targets.subarray(i * SEQ, (i + 1) * SEQ)));
    separate[name] = (await rt.evalTargets(rows, tg)).loss;
  }
  rt.dispose();
  const { steps } = await trainMultiObjective({
    model, adapter: 't', backend: js(), ...common,
    objectives: [{ name: 'completion', weight: 1, data: data.get('completion')! }, { name: 'rationale', weight: 0.5, data: data.get('rationale')! }],
  });
  const s1 = steps[0]!;
  for (const name of ['completion', 'rationale']) assert.ok(Math.abs(s1.losses[name]! - separate[name]!) < 1e-5, `${name}: ${s1.losses[name]} vs ${separate[name]}`);
  assert.ok(Math.abs(s1.loss - (separate.completion! + 0.5 * separate.rationale!)) < 1e-5, `${s1.loss}`);
  assert.ok(steps[3]!.losses.completion! < s1.losses.completion! && steps[3]!.losses.rationale! < s1.losses.rationale!, 'both fall');
  assert.equal(s1.terms, {});
});

test('the same curve on js, wasm and webgpu', async () => {
  const run = async (backend: ReturnType<typeof js>) => {
    const { model, data } = await setup(['completion', 'rationale']);
    return (await trainMultiObjective({ model, adapter: 't', backend, ...common, steps: 3, objectives: [{ name: 'completion', weight: 1, data: data.get('completion')! }, { name: 'rationale', weight: 0.5, data: data.get('rationale')! }] })).steps.map((s) => s.loss);
  };
  const ref = await run(js());
  for (const { name, backend } of await otherBackends()) {
    const diff = curveDiff(ref, await run(backend));
    assert.ok(diff < 1e-4, `${name}: ${diff}`);
    backend.dispose();
  }
});

test('bad data and options are refused by name', async () => {
  const ckpt = await stories();
  const tok = createTokenizer(ckpt.tokenizer!);
  assert.throws(() => multiObjectiveData(`${LINES}\n{"prompt": "a", "completion": "b"}`, 'r.jsonl', tok, SEQ, ['completion', 'rationale']), /r\.jsonl:5: the objective field "rationale" is missing/);
  assert.throws(() => multiObjectiveData('{"completion": "b"}', 'r.jsonl', tok, SEQ, ['completion']), /r\.jsonl:1: expected a JSON object with a "prompt"/);
  const { model, data } = await setup(['completion', 'rationale']);
  const c = data.get('completion')!;
  const refused = async (objectives: { name: string; weight: number; data: typeof c }[], pattern: RegExp) => {
    try { await trainMultiObjective({ model, adapter: 't', backend: js(), ...common, objectives }); } catch (e) { assert.match((e as Error).message, pattern); return; }
    assert.unreachable('accepted');
  };
  await refused([{ name: 'completion', weight: -1, data: c }], /weight of "completion" must be a number ≥ 0/);
  await refused([{ name: 'completion', weight: 1, data: c }, { name: 'completion', weight: 1, data: c }], /given twice/);
  await refused([{ name: 'completion', weight: 0, data: c }], /every weight is 0/);
});

test.run();
