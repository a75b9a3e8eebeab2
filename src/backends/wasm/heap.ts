/**
 * A first-fit allocator over the wasm linear memory above the module's static data. Blocks are
 * multiples of HEAP_ALIGN bytes, so every block starts aligned for SIMD loads and for the arena's
 * ARENA_ALIGN. When nothing fits, the memory grows.
 */
import { OutOfMemoryError } from '../backend.js';

export const HEAP_ALIGN = 256;
const PAGE = 65536;

interface Span {
  start: number;
  size: number;
}

export class Heap {
  private readonly free: Span[] = [];
  private readonly used = new Map<number, number>();
  private end: number;

  /** The first byte the heap manages (below it: the module's static data). */
  readonly start: number;

  constructor(private readonly memory: WebAssembly.Memory, base: number) {
    const start = Math.ceil(base / HEAP_ALIGN) * HEAP_ALIGN;
    this.start = start;
    this.end = memory.buffer.byteLength;
    if (this.end > start) this.free.push({ start, size: this.end - start });
    else this.end = start;
  }

  /** Bytes in blocks handed out and not yet released. */
  get usedBytes(): number {
    let n = 0;
    for (const size of this.used.values()) n += size;
    return n;
  }

  /** Returns the byte offset of a zero-filled block of at least `bytes` bytes. */
  alloc(bytes: number): number {
    const size = Math.max(HEAP_ALIGN, Math.ceil(bytes / HEAP_ALIGN) * HEAP_ALIGN);
    let i = this.free.findIndex((s) => s.size >= size);
    if (i < 0) {
      this.grow(size);
      i = this.free.findIndex((s) => s.size >= size);
    }
    const span = this.free[i];
    const ptr = span.start;
    if (span.size === size) this.free.splice(i, 1);
    else {
      span.start += size;
      span.size -= size;
    }
    this.used.set(ptr, size);
    new Uint8Array(this.memory.buffer, ptr, size).fill(0);
    return ptr;
  }

  release(ptr: number): void {
    const size = this.used.get(ptr);
    if (size === undefined) throw new Error(`wasm heap: release of unknown block ${ptr}`);
    this.used.delete(ptr);
    let i = this.free.findIndex((s) => s.start > ptr);
    if (i < 0) i = this.free.length;
    this.free.splice(i, 0, { start: ptr, size });
    const next = this.free[i + 1];
    if (next && ptr + size === next.start) {
      this.free[i].size += next.size;
      this.free.splice(i + 1, 1);
    }
    const prev = this.free[i - 1];
    if (prev && prev.start + prev.size === ptr) {
      prev.size += this.free[i].size;
      this.free.splice(i, 1);
    }
  }

  private grow(size: number): void {
    const last = this.free[this.free.length - 1];
    const tailFree = last && last.start + last.size === this.end ? last.size : 0;
    const pages = Math.ceil((size - tailFree) / PAGE);
    try {
      this.memory.grow(pages);
    } catch {
      const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;
      throw new OutOfMemoryError(`wasm backend: out of memory: ${mib(size)} more were needed with ${mib(this.memory.buffer.byteLength)} in use`, 'wasm');
    }
    const added = pages * PAGE;
    if (tailFree) last.size += added;
    else this.free.push({ start: this.end, size: added });
    this.end += added;
  }
}
