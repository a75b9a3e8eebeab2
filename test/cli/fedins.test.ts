// train --method fedins: the per-client held-out table (base, federated, central) and the saved global pool,
// which eval --adapter reads; too little data for the clients is refused before any training.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { STORIES_GGUF } from '../assets.js';
import { cli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-fedins-'));
const common = ['--model', STORIES_GGUF, '--backend', 'js', '--batch', '4', '--seq', '64'];

test('federated training reports every client\'s held-out loss and saves the global pool', () => {
  const out = join(dir, 'pool');
  const r = cli(['train', ...common, '--method', 'fedins', '--clients', '2', '--rounds', '2', '--local-steps', '3', '--pool-size', '3', '--lr', '0.01', '--json', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  const line = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event?: string; clients?: { client: number; base: number; federated: number; central: number; tokens: number }[] }).find((l) => l.event === 'fedins')!;
  assert.is(line.clients!.length, 2);
  for (const c of line.clients!) {
    assert.ok(c.tokens > 0 && Number.isFinite(c.federated) && Number.isFinite(c.central));
    assert.ok(c.federated < c.base, `client ${c.client}: federated ${c.federated} against base ${c.base}`);
  }
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as { peft_type: string; pool_size: number };
  assert.equal([cfg.peft_type, cfg.pool_size], ['SSF_POOL', 3]);
  writeFileSync(join(dir, 'held.txt'), 'Once upon a time there was a little dragon named Pip.');
  const e = cli(['eval', '--model', STORIES_GGUF, '--backend', 'js', '--adapter', out, '--data', join(dir, 'held.txt'), '--json']);
  assert.is(e.code, 0, e.stderr);
});

test('too little data for the clients, or a bad pool, is refused before training', () => {
  writeFileSync(join(dir, 'tiny.txt'), 'One story.\n\nTwo stories.');
  const r = cli(['train', ...common, '--method', 'fedins', '--clients', '2', '--data', join(dir, 'tiny.txt'), '--out', join(dir, 'x')]);
  assert.is(r.code, 2);
  assert.match(r.stderr, /2 examples for 2 clients; each needs at least 2/);
  const k = cli(['train', ...common, '--method', 'fedins', '--pool-size', '2', '--top-k', '3', '--out', join(dir, 'x')]);
  assert.match(k.stderr, /topK 3 exceeds the pool of 2/);
});

test.run();
