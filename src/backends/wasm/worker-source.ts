/**
 * The source of a pool worker, as a string so that workers start from it in any runtime without a file
 * path (Node: `new Worker(src, { eval: true })`; Deno and browsers: a Blob URL module worker).
 *
 * A worker instantiates the shared module over the shared memory, then loops: block until the job
 * generation word changes, join the job unless the caller has already closed it (then it is stale or
 * finished), run its share through `runJob`, count itself done. The control block layout (i32 words) is
 * CTRL_* in pool.ts.
 */
export const WORKER_SOURCE = String.raw`
// Node evaluates this as a script or as a module (under --input-type=module), so worker_threads comes
// through import(), which both allow; Deno and browsers have a global 'self'.
const node = typeof self === 'undefined';
let port;
const GEN = 0, JOB = 1, DESC = 2, NTH = 3, DONE = 4, QUIT = 5, ERR = 6, STATE = 7, CLOSED = 1 << 30;
const SPIN = 4096;
function post(m) { port.postMessage(m); }
async function start(msg) {
  const { memory, module, bytes, ctrl, tid } = msg;
  let run;
  try {
    const mod = module || (await WebAssembly.compile(bytes));
    const inst = await WebAssembly.instantiate(mod, { env: { memory } });
    run = inst.exports.runJob;
  } catch (e) {
    post({ error: String(e && e.stack || e) });
    return;
  }
  const c = new Int32Array(memory.buffer, ctrl, 8);
  let gen = Atomics.load(c, GEN);
  post({ ready: true });
  for (;;) {
    // Spin briefly first: kernels come in bursts, and a futex wake costs more than a short spin.
    for (let i = 0; Atomics.load(c, GEN) === gen; i++) {
      if (i >= SPIN) Atomics.wait(c, GEN, gen);
    }
    gen = Atomics.load(c, GEN);
    if (Atomics.load(c, QUIT)) break;
    let s = Atomics.load(c, STATE);
    while (!(s & CLOSED)) {
      const seen = Atomics.compareExchange(c, STATE, s, s + 1);
      if (seen === s) break;
      s = seen;
    }
    if (s & CLOSED) continue;
    const nth = Atomics.load(c, NTH);
    if (tid < nth) {
      try {
        run(Atomics.load(c, JOB), Atomics.load(c, DESC), tid, nth);
      } catch (e) {
        Atomics.store(c, ERR, 1);
      }
    }
    Atomics.add(c, DONE, 1);
    Atomics.notify(c, DONE);
  }
  if (node) port.close(); else self.close();
}
if (node) {
  import('node:worker_threads').then((wt) => {
    port = wt.parentPort;
    port.once('message', start);
  });
} else {
  port = self;
  self.onmessage = (e) => { self.onmessage = null; start(e.data); };
}
`;
