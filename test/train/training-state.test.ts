// Checkpoints that resume. The CLI part: for every method whose saved PEFT adapter is not its training
// state (AdaLoRA cut to its kept ranks with importance averages in its allocator; TriAdaptLoRA's grown
// ranks and growth blocks; PiSSA saved as a plain rank-2r LoRA; LaMDA's columns kept while freezing), a run
// resumed from step 2 ends with the same adapter, byte for byte, as the uninterrupted run. The library
// part: F64 state survives exactly, and damaged files are refused by name without changing the model.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { loadCheckpoint } from '../../src/formats/checkpoint.js';
import { parseSafetensors, safetensorsTensorToF64, writeSafetensors } from '../../src/formats/safetensors.js';
import { decodeTrainingState, encodeTrainingState, TRAINING_STATE_FILE } from '../../src/train/training-state.js';
import { STORIES_GGUF } from '../assets.js';
import { cli } from '../cli/run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-resume-'));

const methods: [string, string[]][] = [
  ['adalora', ['--method', 'adalora', '--tinit', '1', '--tfinal', '1', '--delta-t', '1']],
  ['triadaptlora', ['--method', 'triadaptlora', '--init-warmup', '1', '--incre-interval', '1']],
  ['pissa', ['--init', 'pissa']],
  ['lamda', ['--method', 'lamda', '--freeze-steps', '5']],
];

for (const [name, flags] of methods) {
  test(`${name}: resumed from step 2 of 8, the adapter equals the uninterrupted run's`, () => {
    const common = ['train', '--model', STORIES_GGUF, '--steps', '8', '--batch', '2', '--seq', '32', '--dropout', '0.1', '--backend', 'wasm', '--json', ...flags];
    const full = join(dir, `${name}-full`), resumed = join(dir, `${name}-resumed`);
    const a = cli([...common, '--out', full, '--checkpoint-every', '2']);
    assert.is(a.code, 0, a.stderr);
    assert.ok(existsSync(join(full, 'checkpoint-2', TRAINING_STATE_FILE)));
    const b = cli([...common, '--out', resumed, '--resume', join(full, 'checkpoint-2')]);
    assert.is(b.code, 0, b.stderr);
    for (const f of ['adapter_model.safetensors', 'adapter_config.json']) {
      assert.ok(readFileSync(join(full, f)).equals(readFileSync(join(resumed, f))), `${f} differs`);
    }
  });
}

test('a folder without a training state is refused with the file it lacks', () => {
  const r = cli(['train', '--model', STORIES_GGUF, '--steps', '2', '--backend', 'wasm', '--out', join(dir, 'x'), '--resume', dir]);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /not a checkpoint written by --checkpoint-every \(missing training_state\.safetensors\)/);
});

test('encode/decode: values, optimizer and F64 controller state come back exactly', async () => {
  const ckpt = await loadCheckpoint(STORIES_GGUF);
  const m1 = new AdaptedModel(ckpt);
  const a = m1.addAdapter('default', 'adalora', { targetModules: ['q_proj'], initR: 4, targetR: 2, tinit: 1, tfinal: 1, deltaT: 1, totalStep: 10 }, { seed: 3 });
  for (const p of a.params.values()) p.data.forEach((_, i) => { p.data[i] = Math.sin(i + p.data.length); });
  const third = Float64Array.of(1 / 3, Math.PI, 1e-300);
  const bytes = encodeTrainingState(m1, 'default', 3, { step: 4, optimizer: new Map([['x.adam_m', Float32Array.of(1, 2)]]), controller: new Map([['ipt/k', third]]) });
  const m2 = new AdaptedModel(ckpt);
  const r = decodeTrainingState(m2, 'default', bytes);
  assert.is(r.step, 4);
  assert.is(r.seed, 3);
  assert.equal(Array.from(r.controller.get('ipt/k')!), Array.from(third));
  assert.equal(Array.from(r.optimizer.get('x.adam_m')!), [1, 2]);
  for (const [k, p] of a.params) assert.equal(Array.from(r.adapter.params.get(k)!.data), Array.from(p.data), k);
  assert.equal(r.adapter.config, a.config);
  // F64 written by the safetensors writer reads back bit for bit.
  const f = parseSafetensors(writeSafetensors([['t', { shape: [3], data: third }]]));
  assert.is(f.tensors[0]!.dtype, 'F64');
  assert.equal(Array.from(safetensorsTensorToF64(f, 't')), Array.from(third));
});

test('damaged training states are refused by name and leave the model without the adapter', async () => {
  const ckpt = await loadCheckpoint(STORIES_GGUF);
  const m1 = new AdaptedModel(ckpt);
  m1.addAdapter('default', 'lora', { targetModules: ['q_proj'], r: 2 }, { seed: 1 });
  const good = encodeTrainingState(m1, 'default', 1, { step: 1, optimizer: new Map(), controller: new Map() });
  const file = parseSafetensors(good);
  const rewrite = (drop: string | null, meta: Record<string, string>) => writeSafetensors(
    file.tensors.filter((t) => t.name !== drop).map((t) => [t.name, { shape: t.shape, data: new Float32Array(t.nElements) }] as [string, { shape: number[]; data: Float32Array }]),
    { metadata: { ...file.metadata, ...meta } },
  );
  const cases: [Uint8Array, RegExp][] = [
    [rewrite(null, { format: 'something-else' }), /state\.safetensors: not a training state/],
    [rewrite(file.tensors[0]!.name, {}), /state\.safetensors: missing parameter model\.layers\.\d\.self_attn\.q_proj\.lora_/],
    [rewrite(null, { config: '{' }), /the metadata's config is not valid JSON/],
    [good.slice(0, good.length - 10), /state\.safetensors/],
  ];
  for (const [bytes, message] of cases) {
    const m2 = new AdaptedModel(ckpt);
    try {
      decodeTrainingState(m2, 'default', bytes, 'state.safetensors');
      assert.unreachable('accepted a damaged state');
    } catch (e) {
      assert.match((e as Error).message, message);
    }
    assert.is(m2.adapters.size, 0, 'a failed restore left an adapter behind');
  }
});

test.run();
