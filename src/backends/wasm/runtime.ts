/**
 * One instance of the wasm kernels: the compiled module, the WebAssembly.Memory the host owns (shared
 * when threaded), a heap over it and, with threads, a worker pool. Kernels that run in parallel take a
 * descriptor in memory and are dispatched through `runJob`.
 */
import { canBlock, hasRelaxedSimd, hasSharedMemory, hasSimd, loadWasmModule, type SimdFlavour } from './loader.js';
import { Heap } from './heap.js';
import { CTRL_BYTES, ThreadPool } from './pool.js';

export interface WasmRuntimeOptions {
  /** Threads, the caller included. Default: hardware concurrency, at most MAX_DEFAULT_THREADS. */
  readonly threads?: number;
  readonly simd?: 'auto' | SimdFlavour;
  /** Directory URL holding the .wasm builds, when they are not where this module expects them. */
  readonly wasmDir?: string | URL;
}

/** Job numbers understood by the module's runJob (assembly/index.ts). */
export const JOB_MATMUL = 1;
export const JOB_ATTENTION = 2;
export const JOB_ATTENTION_BACKWARD = 3;
export const JOB_ROWS = 4;

/** Bytes of the descriptor area, used by one kernel at a time. */
const DESC_BYTES = 1024;
const MAX_DEFAULT_THREADS = 8;
// 4 GiB: all a wasm32 memory can address. A shared memory reserves its maximum up front, so smaller
// limits are tried where the engine refuses (32-bit hosts, some mobile browsers).
const MAX_PAGES = [65536, 32768, 16384, 4096];

type Ptr = number;

/** The module's exports (assembly/index.ts). Pointers are byte offsets into the shared memory. */
export interface WasmExports {
  heapBase(): Ptr;
  scratchBytes(job: number, keys: number): number;
  runJob(job: number, desc: Ptr, tid: number, nth: number): void;
  gather(desc: Ptr): void;
  copyRows(dst: Ptr, dstStride: number, src: Ptr, srcStride: number, rows: number, rowBytes: number): void;
  zero(dst: Ptr, bytes: number): void;
  fill32(dst: Ptr, n: number, bits: number): void;
  kvWrite(cache: Ptr, rows: Ptr, pos: Ptr, B: number, T: number, S: number, row: number): void;
  embedding(table: Ptr, ids: Ptr, out: Ptr, n: number, V: number, D: number): void;
  embeddingBackward(ids: Ptr, dy: Ptr, dtable: Ptr, n: number, V: number, D: number): void;
  embeddingCompact(type: number, table: Ptr, scales: Ptr, ids: Ptr, out: Ptr, n: number, V: number, D: number): void;
  dequantize(type: number, src: Ptr, scales: Ptr, n: number, dst: Ptr): void;
  reduce(desc: Ptr, out: Ptr, outN: number, divisor: number): void;
  sumPartials(partials: Ptr, parts: number, stride: number, D: number, out: Ptr): void;
  crossEntropyFinish(partials: Ptr, parts: number, targets: Ptr, N: number, V: number, ignore: number, out: Ptr): void;
}

async function hardwareThreads(): Promise<number> {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  if (nav?.hardwareConcurrency) return nav.hardwareConcurrency;
  if (typeof process !== 'undefined' && process.versions?.node) {
    const os = await import('node:os');
    return os.availableParallelism?.() ?? os.cpus().length;
  }
  return 1;
}

function createMemory(initial: number, shared: boolean): { memory: WebAssembly.Memory; maxPages: number } {
  let last: unknown;
  for (const maximum of MAX_PAGES) {
    try {
      return { memory: new WebAssembly.Memory({ initial: Math.min(initial, maximum), maximum, shared }), maxPages: maximum };
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

export class WasmRuntime {
  readonly heap: Heap;
  /** The byte offset of a DESC_BYTES area for one job descriptor. */
  readonly desc: number;
  private scratchBase = 0;
  private scratchStride = 0;
  private disposed = false;

  private constructor(
    readonly memory: WebAssembly.Memory,
    readonly exports: WasmExports,
    readonly flavour: SimdFlavour,
    private readonly pool: ThreadPool | undefined,
    ctrl: number,
    heap: Heap,
    /** The most bytes this memory can grow to. */
    readonly maxBytes: number,
  ) {
    this.heap = heap;
    this.desc = ctrl + CTRL_BYTES;
  }

  static async create(opts: WasmRuntimeOptions = {}): Promise<WasmRuntime> {
    if (!hasSimd()) throw new Error('wasm backend: this runtime lacks WebAssembly SIMD128');
    const want = opts.simd ?? 'auto';
    const relaxed = hasRelaxedSimd();
    if (want === 'relaxed' && !relaxed) {
      throw new Error('wasm backend: relaxed SIMD is not available here (Node 20 needs --experimental-wasm-relaxed-simd)');
    }
    const flavour: SimdFlavour = want === 'auto' ? (relaxed ? 'relaxed' : 'simd') : want;
    let threads = Math.floor(opts.threads ?? Math.min(await hardwareThreads(), MAX_DEFAULT_THREADS));
    if (!(threads >= 1)) throw new Error(`wasm backend: threads must be ≥ 1, got ${opts.threads}`);
    if (threads > 1 && !(hasSharedMemory() && canBlock())) threads = 1;
    const shared = threads > 1;
    const loaded = await loadWasmModule(flavour, shared, opts.wasmDir);
    const { memory, maxPages } = createMemory(16, shared);
    const instance = await WebAssembly.instantiate(loaded.module, { env: { memory } });
    const exports = instance.exports as unknown as WasmExports;
    const heap = new Heap(memory, exports.heapBase());
    const ctrl = heap.alloc(CTRL_BYTES + DESC_BYTES);
    let pool: ThreadPool | undefined;
    if (shared) pool = await ThreadPool.create(threads - 1, loaded.module, loaded.bytes, memory, ctrl);
    return new WasmRuntime(memory, exports, flavour, pool, ctrl, heap, maxPages * 65536);
  }

  /** Threads a job may use, the caller included. */
  get threads(): number {
    return this.pool?.size ?? 1;
  }

  get shared(): boolean {
    return this.pool !== undefined;
  }

  /**
   * Scratch of at least `bytes` per thread: thread t uses base + t * stride. One region serves every
   * kernel (one runs at a time); it only grows, so ask on every call rather than keeping the base.
   */
  scratch(bytes: number): { base: number; stride: number } {
    if (bytes > this.scratchStride) {
      if (this.scratchBase) this.heap.release(this.scratchBase);
      this.scratchStride = Math.ceil(bytes / 256) * 256;
      this.scratchBase = this.heap.alloc(this.scratchStride * this.threads);
    }
    return { base: this.scratchBase, stride: this.scratchStride };
  }

  /** An Int32Array over the job descriptor area; re-created on every call since memory may have grown. */
  descWords(): Int32Array {
    return new Int32Array(this.memory.buffer, this.desc, DESC_BYTES / 4);
  }

  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, length);
  }

  i32(ptr: number, length: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr, length);
  }

  /** Runs `job` over the descriptor in descWords() on up to `nth` threads. */
  runJob(job: number, nth: number): void {
    if (this.disposed) throw new Error('wasm backend used after dispose()');
    const n = Math.max(1, Math.min(nth, this.threads));
    if (n === 1 || !this.pool) this.exports.runJob(job, this.desc, 0, 1);
    else this.pool.run(job, this.desc, n, this.exports.runJob);
  }

  describe(): string {
    return `wasm (${this.flavour === 'relaxed' ? 'relaxed SIMD' : 'SIMD128'}, ${this.threads} thread${this.threads > 1 ? 's' : ''})`;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pool?.dispose();
  }
}
