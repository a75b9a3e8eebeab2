/**
 * Frozen weights shared by the plans one backend has loaded. A model's training, evaluation and
 * generation graphs declare the same frozen weights; loaded from the same host arrays (the checkpoint's
 * tensors, passed to `Backend.load`), they share one copy on the backend instead of holding one per plan —
 * for a 0.5–1.5B model, the difference between fitting a training run with evaluation and not.
 *
 * A shared copy stays what it was loaded from: writing it while another plan holds it is refused (that
 * plan would see the change); a copy held by one plan only becomes that plan's own when written.
 */
import type { HostArray } from './backend.js';

export class WeightPool<H> {
  private readonly entries = new Map<HostArray, { handle: H; bytes: number; holders: number }>();

  /** The copy of `src` (`make` creates it the first time), held once more. */
  acquire(src: HostArray, bytes: number, make: () => H): H {
    const e = this.entries.get(src);
    if (e && e.bytes === bytes) {
      e.holders++;
      return e.handle;
    }
    const handle = make();
    // A same array of another size cannot be the same weight; it is not shared (a later acquire makes anew).
    if (!e) this.entries.set(src, { handle, bytes, holders: 1 });
    return handle;
  }

  /** Whether `handle` is the pooled copy of `src`. */
  owns(src: HostArray, handle: H): boolean { return this.entries.get(src)?.handle === handle; }

  /** How many plans hold the copy of `src`. */
  holders(src: HostArray): number { return this.entries.get(src)?.holders ?? 0; }

  /** One holder fewer; true when none is left, and the caller frees the copy. */
  release(src: HostArray): boolean {
    const e = this.entries.get(src);
    if (!e) return true;
    if (--e.holders > 0) return false;
    this.entries.delete(src);
    return true;
  }

  /** The copy's one holder keeps it as its own, no longer shared. */
  forget(src: HostArray): void { this.entries.delete(src); }

  /** Bytes of all pooled copies. */
  get bytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.bytes;
    return n;
  }
}

/** The message for a write to a weight other plans share. */
export function sharedWriteMessage(label: string, holders: number): string {
  return `write to ${label}: this frozen weight is shared with ${holders - 1} other loaded plan${holders > 2 ? 's' : ''} (all loaded from the same array), so writing it would change them too; load this plan without it in \`weights\` to give it its own copy`;
}
