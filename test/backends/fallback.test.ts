// Falling back mid-run: a backend that loses its device at step 7 hands the run to another backend, and
// the loss curve continues exactly where it was (parameters and Adam moments carried over).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend, Executable } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { withFallback } from '../../src/scheduler/fallback.js';
import { trainMlp } from '../../src/toy/tasks.js';

/** js, but every executable's run fails from the `failAt`-th call on, as a lost device would. */
function flaky(failAt: number): Backend {
  const inner = createJsBackend();
  return {
    ...inner,
    describe: () => 'flaky test device',
    async load(plan) {
      const exe = await inner.load(plan);
      let runs = 0;
      const wrapped: Executable = {
        backend: exe.backend,
        write: (v, d) => exe.write(v, d),
        read: (v) => exe.read(v),
        adamw: (...a) => exe.adamw(...a),
        dispose: () => exe.dispose(),
        beginProfile: () => exe.beginProfile(),
        endProfile: () => exe.endProfile(),
        run: async (skip) => { if (++runs >= failAt) throw new Error('device lost (simulated)'); return exe.run(skip); },
      };
      return wrapped;
    },
  };
}

test('a device lost at step 7 of 20: the run continues on the fallback with the identical loss curve, and says so', async () => {
  const warnings: string[] = [];
  const ref = (await trainMlp(createJsBackend(), { steps: 20 })).losses;
  const backend = withFallback(flaky(7), async () => createJsBackend(), (m) => warnings.push(m));
  const { losses } = await trainMlp(backend, { steps: 20 });
  assert.equal(losses, ref);
  assert.is(warnings.length, 1);
  assert.match(warnings[0]!, /failed during a step \(device lost \(simulated\)\); continuing on js/);
  assert.match(backend.describe(), /fell back from flaky test device/);
});

test('a failure on the fallback too is not swallowed', async () => {
  const backend = withFallback(flaky(3), async () => flaky(1), () => {});
  try {
    await trainMlp(backend, { steps: 5 });
    assert.unreachable('expected the second failure to surface');
  } catch (e) {
    assert.match((e as Error).message, /device lost/);
  }
});

test.run();
