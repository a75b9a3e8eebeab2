// The test runner (scripts/test.mjs) on fixture suites that fail in each way it must catch. The fixtures
// end in .fixture.ts and sit in `fixtures/`, so the real run never collects them.
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const FIXTURES = 'test/runner/fixtures';

function runOn(fixture: string): { code: number | null; last: string; out: string } {
  const r = spawnSync(process.execPath, ['scripts/test.mjs', '--root', `${FIXTURES}/${fixture}`, '--suffix', '.fixture.ts'], { encoding: 'utf8' });
  const out = r.stdout + r.stderr;
  return { code: r.status, last: r.stdout.trim().split('\n').pop() ?? '', out };
}

test('a clean suite passes and says so in the last line', () => {
  const r = runOn('clean');
  assert.is(r.code, 0, r.out);
  assert.is(r.last, '2 passed, 0 failed');
});

test('a failing test beside skipped tests fails the run: skips do not cancel failures', () => {
  const r = runOn('fail-beside-skips');
  assert.is(r.code, 1, r.out);
  assert.is(r.last, '2 passed, 1 failed, 2 skipped');
  assert.match(r.out, /a-failing\.fixture\.ts: exit code 1; 1 failed: "fails"/);
});

test('a suite using .only fails the run, whatever its tests do', () => {
  const r = runOn('only');
  assert.is(r.code, 1, r.out);
  assert.match(r.out, /only\.fixture\.ts: uses \.only/);
  assert.match(r.last, /^1 passed, 1 failed/);
});

test('a file that throws before its tests run fails the run', () => {
  const r = runOn('crash');
  assert.is(r.code, 1, r.out);
  assert.is(r.last, '0 passed, 1 failed');
  assert.match(r.out, /the file fails before its tests run/);
});

test('a file that runs no test fails the run', () => {
  const r = runOn('no-tests');
  assert.is(r.code, 1, r.out);
  assert.match(r.out, /empty\.fixture\.ts: ran no test/);
});

test('a before hook that throws fails the run, though uvu itself exits 0 and prints no failure', () => {
  const r = runOn('hook');
  assert.is(r.code, 1, r.out);
  assert.match(r.out, /hook\.fixture\.ts: 1 failed: a hook failed before its tests ran/);
  assert.is(r.last, '0 passed, 1 failed');
});

test('a file that exits in the middle of its tests fails the run', () => {
  const r = runOn('early-exit');
  assert.is(r.code, 1, r.out);
  assert.match(r.out, /exit\.fixture\.ts: .*no uvu summary/);
});

test('bad options and an empty selection are errors', () => {
  const bad = spawnSync(process.execPath, ['scripts/test.mjs', '--frobnicate'], { encoding: 'utf8' });
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /unknown option --frobnicate/);
  const none = spawnSync(process.execPath, ['scripts/test.mjs', '--root', `${FIXTURES}/clean`, '--suffix', '.fixture.ts', 'no-such-file'], { encoding: 'utf8' });
  assert.is(none.status, 1);
  assert.match(none.stdout, /no test file under .* ends with \.fixture\.ts and contains 'no-such-file'/);
});

test.run();
