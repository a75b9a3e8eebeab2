/**
 * End-to-end check of the loaders, the rotary layouts and the tokenizer: a small float64 Llama forward
 * pass over the loaded tensors reproduces the reference greedy continuation of stories260K, with the
 * GGUF and llama2.c files as stored (adjacent-pair rotary) and after converting Q/K to rotate-half.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { loadCheckpoint, withRopeLayout, type LlamaCheckpoint, tensorF32 } from '../../src/formats/checkpoint.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { GGUF_PATH, GREEDY_PATH, L2C_PATH } from './helpers.js';

function matvec(w: Float32Array, x: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const base = r * cols;
    for (let c = 0; c < cols; c++) s += w[base + c]! * x[c]!;
    out[r] = s;
  }
  return out;
}

function rmsnorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const k = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * k * w[i]!);
}

/** Rotary embedding in place on one head's vector. */
function rope(v: Float64Array, off: number, headDim: number, pos: number, theta: number, layout: 'pairs' | 'half'): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const a = pos * theta ** (-(2 * i) / headDim);
    const c = Math.cos(a), s = Math.sin(a);
    const [p, q] = layout === 'pairs' ? [off + 2 * i, off + 2 * i + 1] : [off + i, off + i + half];
    const x0 = v[p]!, x1 = v[q]!;
    v[p] = x0 * c - x1 * s;
    v[q] = x0 * s + x1 * c;
  }
}

function greedy(ck: LlamaCheckpoint, bos: number, steps: number): number[] {
  const c = ck.config;
  const W = (n: string) => tensorF32(ck.tensors.get(n)!);
  const hd = c.dim / c.nHeads, kvDim = hd * c.nKvHeads, group = c.nHeads / c.nKvHeads;
  const kc: Float64Array[][] = Array.from({ length: c.nLayers }, () => []);
  const vc: Float64Array[][] = Array.from({ length: c.nLayers }, () => []);
  const out = [bos];
  let token = bos;
  for (let pos = 0; pos < steps; pos++) {
    let x = Float64Array.from(W('model.embed_tokens.weight').subarray(token * c.dim, (token + 1) * c.dim));
    for (let l = 0; l < c.nLayers; l++) {
      const p = `model.layers.${l}.`;
      const xb = rmsnorm(x, W(`${p}input_layernorm.weight`), c.normEps);
      const q = matvec(W(`${p}self_attn.q_proj.weight`), xb, c.dim, c.dim);
      const k = matvec(W(`${p}self_attn.k_proj.weight`), xb, kvDim, c.dim);
      const v = matvec(W(`${p}self_attn.v_proj.weight`), xb, kvDim, c.dim);
      for (let h = 0; h < c.nHeads; h++) rope(q, h * hd, hd, pos, c.ropeTheta, c.ropeLayout);
      for (let h = 0; h < c.nKvHeads; h++) rope(k, h * hd, hd, pos, c.ropeTheta, c.ropeLayout);
      kc[l]!.push(k);
      vc[l]!.push(v);
      const att = new Float64Array(c.dim);
      for (let h = 0; h < c.nHeads; h++) {
        const kh = Math.floor(h / group) * hd;
        const scores = kc[l]!.map((kt) => {
          let s = 0;
          for (let i = 0; i < hd; i++) s += q[h * hd + i]! * kt[kh + i]!;
          return s / Math.sqrt(hd);
        });
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t < e.length; t++) {
          for (let i = 0; i < hd; i++) att[h * hd + i] += (e[t]! / z) * vc[l]![t]![kh + i]!;
        }
      }
      const o = matvec(W(`${p}self_attn.o_proj.weight`), att, c.dim, c.dim);
      x = x.map((xv, i) => xv + o[i]!);
      const xb2 = rmsnorm(x, W(`${p}post_attention_layernorm.weight`), c.normEps);
      const g = matvec(W(`${p}mlp.gate_proj.weight`), xb2, c.hiddenDim, c.dim);
      const u = matvec(W(`${p}mlp.up_proj.weight`), xb2, c.hiddenDim, c.dim);
      const hh = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]!);
      const d = matvec(W(`${p}mlp.down_proj.weight`), hh, c.dim, c.hiddenDim);
      x = x.map((xv, i) => xv + d[i]!);
    }
    const xf = rmsnorm(x, W('model.norm.weight'), c.normEps);
    const logits = matvec(c.tiedEmbeddings ? W('model.embed_tokens.weight') : W('lm_head.weight'), xf, c.vocabSize, c.dim);
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    if (best === bos) break;
    out.push(best);
    token = best;
  }
  return out;
}

const reference = readFileSync(GREEDY_PATH, 'utf8');

for (const [label, path] of [['GGUF', GGUF_PATH], ['llama2.c', L2C_PATH]] as const) {
  test(`${label}: greedy continuation from BOS decodes to greedy-256.txt exactly (pairs layout)`, async () => {
    const ck = await loadCheckpoint(path);
    assert.is(ck.config.ropeLayout, 'pairs');
    const tok = createTokenizer(ck.tokenizer!);
    const ids = greedy(ck, tok.bosId!, 256);
    assert.is(tok.decode(ids), reference);
    // Streaming gives the same text piece by piece.
    const sd = tok.streamDecoder();
    assert.is(ids.map((id) => sd.push(id)).join('') + sd.flush(), reference);
  });
}

test('the same continuation with Q/K converted to rotate-half and rotate-half rotary', async () => {
  const ck = withRopeLayout(await loadCheckpoint(GGUF_PATH), 'half');
  assert.is(ck.config.ropeLayout, 'half');
  const tok = createTokenizer(ck.tokenizer!);
  assert.is(tok.decode(greedy(ck, 1, 256)), reference);
});

test('rotate-half rotary on pair-layout weights (the wrong pairing) does not reproduce it', async () => {
  const ck = await loadCheckpoint(GGUF_PATH);
  const wrong = { ...ck, config: { ...ck.config, ropeLayout: 'half' as const } };
  const text = createTokenizer(ck.tokenizer!).decode(greedy(wrong, 1, 64));
  assert.ok(!reference.startsWith(text), text);
});

test.run();
