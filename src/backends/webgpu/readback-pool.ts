/**
 * Readback (MAP_READ) buffers reused across reads: a training step reads its loss every step, and making
 * and destroying a buffer each time costs driver work the GPU may wait on. Buffers come in power-of-two
 * sizes; a few of each size are kept, up to a total, and larger requests get a buffer of their own.
 */
export class ReadbackPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private pooledBytes = 0;
  /** Buffers made so far (for tests: reuse shows as a count that stops growing). */
  created = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly maxPooledBytes = 64 << 20,
    private readonly perSize = 4,
  ) {}

  static sizeFor(bytes: number): number {
    return Math.max(256, 2 ** Math.ceil(Math.log2(Math.max(1, bytes))));
  }

  acquire(bytes: number, label: string): GPUBuffer {
    const size = ReadbackPool.sizeFor(bytes);
    const list = this.free.get(size);
    const reused = list?.pop();
    if (reused) {
      this.pooledBytes -= size;
      return reused;
    }
    this.created++;
    return this.device.createBuffer({ label, size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  /** Give back an unmapped buffer from `acquire`; it is kept for reuse or destroyed. */
  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    const list = this.free.get(size) ?? [];
    if (buffer.mapState !== 'unmapped' || list.length >= this.perSize || this.pooledBytes + size > this.maxPooledBytes) {
      buffer.destroy();
      return;
    }
    list.push(buffer);
    this.free.set(size, list);
    this.pooledBytes += size;
  }

  destroy(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.pooledBytes = 0;
  }
}
