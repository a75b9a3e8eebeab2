// The uniform op: numbers in (0, 1) from a step seed, uniformly spread (mean 1/2, variance 1/12 over 20,000
// draws, within 0.01 and 0.005), a different stream per salt, and the same bits on js, wasm and webgpu.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend } from '../../src/backends/backend.js';
import * as F from '../../src/graph/api.js';
import { Graph } from '../../src/graph/graph.js';
import { Session } from '../../src/scheduler/session.js';
import { js, otherBackends } from '../backends/backends.js';

async function draw(backend: Backend, seed: number, salt: number, n: number): Promise<Float32Array> {
  const g = new Graph();
  const s = g.input('seed', [1], 'i32');
  const u = F.uniform(s, [n], salt);
  g.markOutput(u);
  const session = await Session.create(g, backend);
  session.set(s, Int32Array.of(seed));
  await session.run();
  const out = Float32Array.from(await session.get(u));
  session.dispose();
  return out;
}

test('uniform numbers lie in (0, 1) with the moments of U(0, 1); salts give other streams', async () => {
  const u = await draw(js(), 77, 0, 20000);
  let mean = 0, sq = 0;
  for (const x of u) { assert.ok(x > 0 && x < 1, `${x}`); mean += x; sq += x * x; }
  mean /= u.length;
  const variance = sq / u.length - mean * mean;
  assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1 / 12) < 0.005, `variance ${variance}`);
  const other = await draw(js(), 77, 1, 20000);
  const same = u.filter((x, i) => x === other[i]).length;
  assert.ok(same < 20, `${same} equal draws with another salt`);
  // A seed plus a salt is the seed they sum to (one step seed serves every site through its salt).
  assert.equal(Array.from(await draw(js(), 78, 0, 50)), Array.from(other.subarray(0, 50)));
});

test('the same bits on every backend', async () => {
  const want = await draw(js(), -123456, 5, 3001);
  for (const { name, backend } of await otherBackends()) {
    const got = await draw(backend, -123456, 5, 3001);
    assert.ok(got.every((x, i) => x === want[i]), `${name} draws other numbers`);
    backend.dispose();
  }
});

test.run();
