// The wasm backend under Deno (npm package `deno`): threads through Web Workers started from a Blob URL,
// as in a browser, and a process that exits once the pool is disposed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const deno = fileURLToPath(new URL('../../node_modules/.bin/deno', import.meta.url));
const script = fileURLToPath(new URL('./pool-main.ts', import.meta.url));

test('Deno: 2 threads over Web Workers agree with 1 thread, and the process exits', () => {
  assert.ok(existsSync(deno), 'the deno binary (devDependency `deno`) is missing: run npm install');
  // --sloppy-imports maps the sources' '.js' import specifiers to their '.ts' files, as tsx does for Node.
  const r = spawnSync(deno, ['run', '--allow-read', '--sloppy-imports', script], { encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 0, `deno exited with ${r.status}: ${r.stderr}`);
  assert.match(r.stdout, /^ok wasm \((relaxed SIMD|SIMD128), 2 threads\)/);
});

test.run();
