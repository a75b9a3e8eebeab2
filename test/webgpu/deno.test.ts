// The op checks of op-cases.ts under Deno (npm package `deno`), on Deno's own WebGPU implementation:
// it takes Mesa's lavapipe from the Vulkan loader, or SwiftShader when VK_ICD_FILENAMES points there.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const deno = fileURLToPath(new URL('../../node_modules/.bin/deno', import.meta.url));
const script = fileURLToPath(new URL('./deno-main.ts', import.meta.url));

test('Deno: every op on WebGPU agrees with js', () => {
  assert.ok(existsSync(deno), 'the deno binary (devDependency `deno`) is missing: run npm install');
  // --sloppy-imports maps the sources' '.js' import specifiers to their '.ts' files, as tsx does for Node.
  const r = spawnSync(deno, ['run', '--allow-read', '--sloppy-imports', script], { encoding: 'utf8', timeout: 240_000 });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.ok(/^# webgpu \(deno\)/m.test(r.stdout), `no WebGPU adapter under Deno (a Vulkan driver is needed: mesa-vulkan-drivers or SwiftShader):\n${out}`);
  assert.is(r.status, 0, `deno exited with ${r.status}:\n${out}`);
  assert.match(r.stdout, /deno: \d+ passed, 0 failed/);
});

test.run();
