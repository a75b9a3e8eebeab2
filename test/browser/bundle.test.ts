// The demo's bundles load in a browser: no static import of a Node built-in (a module worker cannot resolve
// `node:fs`), only dynamic ones behind Node-only code paths. Reads the bundles `npm test` builds first.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

for (const file of ['dist/demo/main.js', 'dist/demo/worker.js']) {
  test(`${file} has no static import of a Node built-in`, () => {
    const code = readFileSync(file, 'utf8');
    const stat = code.match(/(?:^|[;\n}])\s*import\s*(?:[\w*{}\s,$]+from\s*)?["']node:[\w/]+["']/g) ?? [];
    assert.equal(stat, [], `static node imports: ${stat.join(' | ')}`);
    // The pattern finds what it looks for: a planted static import is caught.
    assert.ok(/(?:^|[;\n}])\s*import\s*(?:[\w*{}\s,$]+from\s*)?["']node:[\w/]+["']/.test('x=1;import{a as b}from"node:fs";'));
  });
}

test.run();
