// `convert` writes compact GGUF copies; `merge` onto a compact base writes f32, f16 or re-quantised weights
// and says which; --base-dtype reaches the loader.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { loadPeft } from '../../src/adapters/peft.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { type LlamaCheckpoint, isCompactTensor, loadCheckpoint, tensorF32 } from '../../src/formats/checkpoint.js';
import { parseGguf } from '../../src/formats/gguf.js';
import { parseSafetensors } from '../../src/formats/safetensors.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { quantize } from '../../src/quant/index.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { paragraphs } from '../../src/data/text.js';
import { STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';
import { cli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-convert-'));
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

let seqs: number[][] = [];
async function loss(ck: LlamaCheckpoint, adapter?: string): Promise<number> {
  if (!seqs.length) {
    const tok = createTokenizer(ck.tokenizer!);
    seqs = paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8')).slice(0, 12).map((p) => tok.encode(p, { bos: true }).slice(0, 97));
  }
  const js = createJsBackend();
  let rt: LlamaRuntime;
  if (adapter) {
    const model = new AdaptedModel(ck);
    loadPeft(model, 'default', { config: readFileSync(join(adapter, 'adapter_config.json'), 'utf8'), weights: new Uint8Array(readFileSync(join(adapter, 'adapter_model.safetensors'))) });
    rt = model.runtime(js);
  } else rt = new LlamaRuntime(ck, js);
  const r = (await rt.evalLoss(seqs)).loss;
  rt.dispose();
  js.dispose();
  return r;
}

// Measured on these 12 paragraphs × 96 tokens (f32 loss 1.48264): f16 moves it by 8.7e-6 relative, q8_0 by
// 9.1e-6, q4_0 by 7.3% (a 260K-parameter model with rows of 64 has little redundancy to absorb 4-bit weights).
const TOLERANCE = { f16: 1e-4, q8_0: 1e-3, q4_0: 0.1 } as const;

for (const dtype of ['q8_0', 'q4_0', 'f16'] as const) {
  test(`convert --dtype ${dtype}: reloaded tensors are quantize() of the original; eval within ${TOLERANCE[dtype]} relative`, async () => {
    const out = join(dir, `stories-${dtype}.gguf`);
    const r = cli(['convert', '--model', STORIES_GGUF, '--dtype', dtype, '--out', out]);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`wrote .*stories-${dtype}\\.gguf: .* MiB, weights ${dtype} ×${dtype === 'f16' ? 36 : 31}`));
    const orig = await loadCheckpoint(STORIES_GGUF);
    const conv = await loadCheckpoint(out);
    const file = parseGguf(new Uint8Array(readFileSync(out)));
    assert.is(file.tensorsByName.get('blk.0.attn_q.weight')!.typeName, dtype.toUpperCase());
    for (const [name, t] of orig.tensors) {
      const c = conv.tensors.get(name)!;
      if (t.shape.length === 1) {
        assert.equal(Array.from(tensorF32(c)), Array.from(tensorF32(t)), name);
        continue;
      }
      const want = dtype !== 'f16' && t.shape[1]! % 32 !== 0 ? 'f16' : dtype;
      assert.ok(isCompactTensor(c) && c.dtype === want && sameBytes(c.bytes, quantize(want, tensorF32(t))), name);
    }
    const [a, b] = [await loss(orig), await loss(conv)];
    assert.ok(Math.abs(a - b) / a <= TOLERANCE[dtype], `${dtype}: ${b} vs f32 ${a}`);
  });
}

test('convert and --base-dtype refuse bad values before loading, with the option named', () => {
  const a = cli(['convert', '--model', STORIES_GGUF, '--dtype', 'q5_k', '--out', join(dir, 'x.gguf')]);
  assert.is(a.code, 2);
  assert.match(a.stderr, /--dtype must be one of f32, f16, bf16, q8_0, q4_0, q4_1 \(got q5_k\)/);
  const b = cli(['convert', '--model', STORIES_GGUF, '--dtype', 'q8_0', '--out', join(dir, 'x.bin')]);
  assert.match(b.stderr, /convert writes GGUF; name the file \*\.gguf/);
  const c = cli(['eval', '--model', STORIES_GGUF, '--data', TINYSTORIES_VAL, '--base-dtype', 'int4', '--backend', 'js']);
  assert.is(c.code, 2);
  assert.match(c.stderr, /--base-dtype must be one of auto, f32, f16, bf16, q8_0, q4_0, q4_1 \(got "int4"\)/);
});

test('eval --base-dtype q8_0 on the f32 file equals eval of the q8_0 copy', () => {
  const args = ['--data', TINYSTORIES_VAL, '--paragraphs', '4', '--max-tokens', '48', '--backend', 'js', '--json'];
  const a = cli(['eval', '--model', STORIES_GGUF, '--base-dtype', 'q8_0', ...args]);
  const b = cli(['eval', '--model', join(dir, 'stories-q8_0.gguf'), ...args]);
  assert.is(a.code, 0, a.stderr);
  assert.match(a.stderr, /note: rows of 172 values are not whole 32-value blocks/);
  assert.is(JSON.parse(a.stdout.trim().split('\n').pop()!).loss, JSON.parse(b.stdout.trim().split('\n').pop()!).loss);
});

test('train on a q8_0 base, then merge: f32 by default (and says so), f16 on request, q8_0 re-quantised keeps untouched weights bit for bit', async () => {
  const base = join(dir, 'stories-q8_0.gguf');
  const adapter = join(dir, 'adapter');
  const t = cli(['train', '--model', base, '--steps', '3', '--batch', '2', '--seq', '32', '--lr', '0.02', '--targets', 'q_proj,v_proj', '--rank', '4', '--backend', 'js', '--out', adapter, '--json']);
  assert.is(t.code, 0, t.stderr);
  const q8 = await loadCheckpoint(base);
  const withAdapter = await loss(q8, adapter);
  assert.ok(Math.abs(withAdapter - await loss(q8)) > 1e-4, 'the adapter should change the loss');

  const m32 = cli(['merge', '--model', base, '--adapter', adapter, '--out', join(dir, 'm32')]);
  assert.is(m32.code, 0, m32.stderr);
  assert.match(m32.stderr, /merged weights written as f32 \(the base model is q8_0 ×31, f32 ×11, f16 ×5\)/);
  const g32 = parseGguf(new Uint8Array(readFileSync(join(dir, 'm32', 'model.gguf'))));
  assert.equal([...new Set(g32.tensors.map((x) => x.typeName))], ['F32']);
  const merged32 = await loadCheckpoint(join(dir, 'm32', 'model.gguf'));
  assert.ok(Math.abs(await loss(merged32) - withAdapter) < 1e-4);
  assert.ok(Math.abs(await loss(await loadCheckpoint(join(dir, 'm32'))) - withAdapter) < 1e-4);

  const m16 = cli(['merge', '--model', base, '--adapter', adapter, '--out', join(dir, 'm16'), '--dtype', 'f16']);
  assert.match(m16.stderr, /merged weights written as f16/);
  const st = parseSafetensors(new Uint8Array(readFileSync(join(dir, 'm16', 'model.safetensors'))));
  assert.is(st.tensorsByName.get('model.layers.0.self_attn.q_proj.weight')!.dtype, 'F16');
  assert.is(st.tensorsByName.get('model.norm.weight')!.dtype, 'F32');
  assert.is(JSON.parse(readFileSync(join(dir, 'm16', 'config.json'), 'utf8')).torch_dtype, 'float16');
  assert.ok(Math.abs(await loss(await loadCheckpoint(join(dir, 'm16', 'model.gguf'))) - withAdapter) < 2e-3);

  const mq = cli(['merge', '--model', base, '--adapter', adapter, '--out', join(dir, 'mq'), '--dtype', 'q8_0', '--format', 'gguf']);
  assert.is(mq.code, 0, mq.stderr);
  const requant = await loadCheckpoint(join(dir, 'mq', 'model.gguf'));
  for (const name of ['model.embed_tokens.weight', 'model.layers.2.self_attn.k_proj.weight', 'model.layers.2.mlp.up_proj.weight']) {
    const a = q8.tensors.get(name)!, b = requant.tensors.get(name)!;
    assert.ok(isCompactTensor(a) && isCompactTensor(b) && sameBytes(a.bytes, b.bytes), name);
  }
  const q = requant.tensors.get('model.layers.2.self_attn.q_proj.weight')!;
  assert.ok(isCompactTensor(q) && sameBytes(q.bytes, quantize('q8_0', tensorF32(merged32.tensors.get('model.layers.2.self_attn.q_proj.weight')!))));

  const bad = cli(['merge', '--model', base, '--adapter', adapter, '--out', join(dir, 'bad'), '--dtype', 'q4_0']);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /--dtype q4_0 is written only to GGUF; add --format gguf/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
