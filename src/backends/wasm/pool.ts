/**
 * Threads for the wasm backend: workers that each instantiate the same compiled module over one shared
 * WebAssembly.Memory. A job is dispatched by writing a descriptor into shared memory, bumping a
 * generation word and waking the workers; the calling thread runs share 0 itself, closes the job to
 * latecomers and blocks until every worker that joined has finished. Kernels hand out tasks from an
 * atomic counter, so a worker the OS wakes late finds the work done instead of holding the caller up. Works with Node's worker_threads and with Web Workers
 * (Deno, Bun, browsers); where the calling thread may not block (a browser's main thread), there is no pool.
 */
import { WORKER_SOURCE } from './worker-source.js';

// Control block, i32 words; mirrored in worker-source.ts.
export const CTRL_GEN = 0;
export const CTRL_JOB = 1;
export const CTRL_DESC = 2;
export const CTRL_NTH = 3;
export const CTRL_DONE = 4;
export const CTRL_QUIT = 5;
export const CTRL_ERR = 6;
/** Workers that joined the current job; CTRL_CLOSED is or-ed in once the caller stops accepting more. */
export const CTRL_STATE = 7;
export const CTRL_CLOSED = 1 << 30;
export const CTRL_BYTES = 32;

const SPIN = 4096;

interface WorkerHandle {
  post(msg: unknown): void;
  /** Resolves on the worker's first message; rejects on a start-up error. */
  ready: Promise<void>;
  terminate(): void;
}

/**
 * Node proper: Deno and Bun also report `process.versions.node`, but take Web Workers. Bun's
 * worker_threads worker has a global `self` whose `onmessage` never receives what the parent posts, so a
 * worker started that way waited for its first message forever.
 */
function isNode(): boolean {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  return typeof process !== 'undefined' && !!process.versions?.node && g.Deno === undefined && g.Bun === undefined;
}

async function spawnWorker(): Promise<WorkerHandle> {
  if (isNode()) {
    const { Worker } = await import('node:worker_threads');
    const w = new Worker(WORKER_SOURCE, { eval: true });
    // A blocked worker must not keep the process alive once the caller is done with the pool.
    w.unref();
    const ready = new Promise<void>((resolve, reject) => {
      w.once('message', (m: { error?: string }) => (m.error ? reject(new Error(m.error)) : resolve()));
      w.once('error', reject);
    });
    return { post: (m) => w.postMessage(m), ready, terminate: () => void w.terminate() };
  }
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
  const w = new Worker(url, { type: 'module' });
  const ready = new Promise<void>((resolve, reject) => {
    w.onmessage = (e: MessageEvent<{ error?: string }>) => {
      w.onmessage = null;
      URL.revokeObjectURL(url);
      if (e.data.error) return reject(new Error(e.data.error));
      // Bun's Web Workers keep the process alive as Node's do, unless unref'd (Deno's and browsers' have no
      // unref); not before this point, or nothing would wait for the first message.
      (w as { unref?: () => void }).unref?.();
      resolve();
    };
    w.onerror = (e) => reject(new Error(e.message));
  });
  return { post: (m) => w.postMessage(m), ready, terminate: () => w.terminate() };
}

export class ThreadPool {
  private readonly workers: WorkerHandle[];
  private readonly ctrl: Int32Array;
  private disposed = false;

  private constructor(workers: WorkerHandle[], memory: WebAssembly.Memory, ctrlPtr: number) {
    this.workers = workers;
    this.ctrl = new Int32Array(memory.buffer, ctrlPtr, CTRL_BYTES / 4);
  }

  /** Starts `count` workers (threads besides the caller). ctrlPtr: CTRL_BYTES of zeroed shared memory. */
  static async create(
    count: number, module: WebAssembly.Module, bytes: Uint8Array, memory: WebAssembly.Memory, ctrlPtr: number,
  ): Promise<ThreadPool> {
    const workers: WorkerHandle[] = [];
    try {
      for (let tid = 1; tid <= count; tid++) {
        const w = await spawnWorker();
        workers.push(w);
        try {
          w.post({ memory, module, ctrl: ctrlPtr, tid });
        } catch {
          // Some runtimes cannot clone a compiled module; the worker compiles its own copy instead.
          w.post({ memory, bytes, ctrl: ctrlPtr, tid });
        }
      }
      await Promise.all(workers.map((w) => w.ready));
    } catch (e) {
      for (const w of workers) w.terminate();
      throw e;
    }
    return new ThreadPool(workers, memory, ctrlPtr);
  }

  /** Threads a job can use, the caller included. */
  get size(): number {
    return this.workers.length + 1;
  }

  /**
   * Runs `job` on `nth` threads (the caller is thread 0) and returns when all are done.
   * `own` runs the caller's share.
   */
  run(job: number, desc: number, nth: number, own: (job: number, desc: number, tid: number, nth: number) => void): void {
    const c = this.ctrl;
    if (this.disposed) throw new Error('wasm thread pool used after dispose()');
    Atomics.store(c, CTRL_JOB, job);
    Atomics.store(c, CTRL_DESC, desc);
    Atomics.store(c, CTRL_NTH, nth);
    Atomics.store(c, CTRL_DONE, 0);
    Atomics.store(c, CTRL_ERR, 0);
    Atomics.store(c, CTRL_STATE, 0);
    Atomics.add(c, CTRL_GEN, 1);
    Atomics.notify(c, CTRL_GEN);
    try {
      own(job, desc, 0, nth);
    } finally {
      const joined = Atomics.or(c, CTRL_STATE, CTRL_CLOSED) & ~CTRL_CLOSED;
      let spins = 0;
      for (let d = Atomics.load(c, CTRL_DONE); d < joined; d = Atomics.load(c, CTRL_DONE)) {
        if (++spins > SPIN) Atomics.wait(c, CTRL_DONE, d);
      }
    }
    if (Atomics.load(c, CTRL_ERR)) throw new Error('wasm backend: a worker thread failed while running a kernel');
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    Atomics.store(this.ctrl, CTRL_QUIT, 1);
    Atomics.add(this.ctrl, CTRL_GEN, 1);
    Atomics.notify(this.ctrl, CTRL_GEN);
    for (const w of this.workers) w.terminate();
  }
}
