/**
 * Q-GaLore's two low-precision stores: the weights as INT8 codes updated by stochastic rounding, and the
 * projection matrices as INT4 codes. Both are grouped over the row-major elements (groups of 256; the
 * last group may be shorter).
 */

/** Elements per quantisation group (weights and projectors). */
export const QUANT_GROUP = 256;

/** Round x down or up at random, up with probability x − ⌊x⌋: E[result] = x (unbiased). */
export function stochasticRound(x: number, rng: () => number): number {
  const f = Math.floor(x);
  return rng() < x - f ? f + 1 : f;
}

/**
 * A weight held as INT8: per group a symmetric scale s (f32) and codes q ∈ [−127, 127], value = s·q.
 * Symmetric so that zero is exact and a code changes only when an update moves its value. A group's scale
 * is set from its largest |value| when the weight is first quantised and grows (never shrinks) when an
 * update would carry a value past ±127·s; only then is the whole group re-rounded at the new scale.
 */
export class Int8Weights {
  readonly codes: Int8Array;
  readonly scales: Float32Array;

  private constructor(readonly length: number, readonly group: number) {
    this.codes = new Int8Array(length);
    this.scales = new Float32Array(Math.ceil(length / group));
  }

  /** Quantise to the nearest code (the starting weights: deterministic). */
  static nearest(values: ArrayLike<number>, group = QUANT_GROUP): Int8Weights {
    const w = new Int8Weights(values.length, group);
    for (let gi = 0; gi < w.scales.length; gi++) {
      const a = gi * group, b = Math.min(values.length, a + group);
      let max = 0;
      for (let i = a; i < b; i++) max = Math.max(max, Math.abs(values[i]!));
      const s = Math.fround(max / 127);
      w.scales[gi] = s;
      for (let i = a; i < b; i++) w.codes[i] = s > 0 ? clamp127(Math.round(values[i]! / s)) : 0;
    }
    return w;
  }

  /** The value of element i. */
  value(i: number): number {
    return this.scales[Math.floor(i / this.group)]! * this.codes[i]!;
  }

  /** Every value, into `out` (f32: what the training graph holds). */
  dequantize(out: Float32Array | Float64Array = new Float32Array(this.length)): Float32Array | Float64Array {
    for (let i = 0; i < this.length; i++) out[i] = this.value(i);
    return out;
  }

  /** Hold new values: stochastic rounding to the codes, a group's scale grown first where a value would not fit. */
  store(values: ArrayLike<number>, rng: () => number): void {
    if (values.length !== this.length) throw new RangeError(`int8 weights: ${values.length} values for ${this.length} codes`);
    for (let gi = 0; gi < this.scales.length; gi++) {
      const a = gi * this.group, b = Math.min(this.length, a + this.group);
      let max = 0;
      for (let i = a; i < b; i++) max = Math.max(max, Math.abs(values[i]!));
      let s = this.scales[gi]!;
      // Grown with a little headroom so that f32 rounding of the scale never puts |x/s| above 127.
      if (max > 127 * s) { s = Math.fround((max / 127) * (1 + 1e-6)); this.scales[gi] = s; }
      for (let i = a; i < b; i++) this.codes[i] = s > 0 ? clamp127(stochasticRound(values[i]! / s, rng)) : 0;
    }
  }

  /** Codes (1 byte each) and f32 scales. */
  bytes(): number { return this.codes.byteLength + this.scales.byteLength; }
}

function clamp127(q: number): number {
  return q > 127 ? 127 : q < -127 ? -127 : q;
}

/**
 * A matrix held as INT4: per group an asymmetric grid (scale s = (max − min)/15, integer zero point
 * z = round(−min/s)), codes q ∈ [0, 15], value = s·(q − z); two codes a byte. Every value in a group's
 * [min, max] comes back within s/2 of itself.
 */
export class Int4Matrix {
  /** Two codes per byte, the even element in the low nibble. */
  readonly packed: Uint8Array;
  readonly scales: Float32Array;
  readonly zeros: Uint8Array;
  readonly length: number;

  constructor(values: ArrayLike<number>, readonly group = QUANT_GROUP) {
    const n = values.length;
    this.packed = new Uint8Array(Math.ceil(n / 2));
    const groups = Math.ceil(n / group);
    this.scales = new Float32Array(groups);
    this.zeros = new Uint8Array(groups);
    for (let gi = 0; gi < groups; gi++) {
      const a = gi * group, b = Math.min(n, a + group);
      let min = Infinity, max = -Infinity;
      for (let i = a; i < b; i++) { min = Math.min(min, values[i]!); max = Math.max(max, values[i]!); }
      // A constant group would have s = 0: the reference floors the range at 1e-5.
      const s = Math.fround(Math.max(max - min, 1e-5) / 15);
      const z = Math.min(15, Math.max(0, Math.round(-min / s)));
      this.scales[gi] = s; this.zeros[gi] = z;
      for (let i = a; i < b; i++) {
        const q = Math.min(15, Math.max(0, Math.round(values[i]! / s) + z));
        this.packed[i >> 1] |= (i & 1) ? q << 4 : q;
      }
    }
    this.length = n;
  }

  /** The values, f32. */
  dequantize(out: Float32Array = new Float32Array(this.length)): Float32Array {
    for (let i = 0; i < this.length; i++) {
      const byte = this.packed[i >> 1]!, q = (i & 1) ? byte >> 4 : byte & 15;
      const gi = Math.floor(i / this.group);
      out[i] = this.scales[gi]! * (q - this.zeros[gi]!);
    }
    return out;
  }

  /** Packed codes, f32 scales and one-byte zero points. */
  bytes(): number { return this.packed.byteLength + this.scales.byteLength + this.zeros.byteLength; }
}
