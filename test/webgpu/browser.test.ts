// The op checks of op-cases.ts in headless Chromium (Debian's /usr/bin/chromium, WebGPU on SwiftShader),
// bundled with esbuild and driven by playwright-core (test/browser-harness/).
import { existsSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CHROMIUM, runInBrowser } from '../browser-harness/run.js';

test('Chromium: every op on WebGPU agrees with js', async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
  const r = await runInBrowser();
  console.log(`# ${r.adapter}`);
  assert.ok(!r.error, `the page failed: ${r.error}\n${r.pageErrors.join('\n')}`);
  const bad = r.results.filter((x) => !x.ok);
  assert.ok(r.results.length > 0, 'the page ran no check');
  assert.equal(bad.map((x) => `${x.name}: ${x.detail}`), []);
});

test.run();
