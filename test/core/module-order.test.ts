// Every source module must load when a program imports it first. The model families, the loaders and the
// adapters import one another, and a constant read while a module initialises (a family object, a table)
// throws "Cannot access … before initialization" only for some import orders: a test file that happened to
// import an adapter before the model failed while the rest of the suite passed. Each module is imported in a
// fresh process, so every order a user's first import can produce is tried.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

// Entry points that act on import (the CLI runs main) are not libraries: they are loaded by the CLI tests.
const RUNS_ON_IMPORT = new Set([join('src', 'cli', 'main.ts')]);

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts') && !RUNS_ON_IMPORT.has(p)) out.push(p);
  }
  return out;
}

function importAlone(file: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const code = `import(${JSON.stringify('./' + file.split('\\').join('/'))}).catch((e) => { console.error(e && e.message); process.exit(3); })`;
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', code], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    child.on('close', (status) => resolve(status === 0 ? undefined : `${file}: ${err.trim().split('\n')[0] || `exit ${status}`}`));
  });
}

test('every module under src/ loads as the first import of a process', async () => {
  const files = sources('src');
  assert.ok(files.length > 100, `found only ${files.length} source files`);
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const f = await importAlone(files[next++]);
      if (f) failures.push(f);
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  assert.equal(failures, [], failures.join('\n'));
});

test.run();
