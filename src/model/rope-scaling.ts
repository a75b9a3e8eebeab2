/**
 * RoPE scaling (Hugging Face `rope_scaling` in config.json; GGUF `{arch}.rope.scaling.*` and `rope_freqs.weight`
 * are mapped onto it when loading). Per pair i of a head of D dimensions, the unscaled inverse frequency is
 * θ^(−2i/D); a scaling replaces it by a per-pair table computed here once on the host in float64, and may
 * multiply cos and sin by an attention factor (YaRN). Supported `rope_type` (or legacy `type`):
 *   linear   θ^(−2i/D) / factor (positions divided by factor)
 *   dynamic  dynamic NTK: when the sequence length L exceeds original_max_position_embeddings M (default
 *            max_position_embeddings), θ becomes θ·(factor·L/M − (factor − 1))^(D/(D−2)); unchanged otherwise
 *   yarn     per-pair blend of interpolated (÷ factor) and original frequencies over a linear ramp between the
 *            correction dimensions of beta_fast (32) and beta_slow (1) rotations in M; cos and sin × attention_factor
 *            (default 0.1·ln(factor) + 1, 1 when factor ≤ 1)
 *   llama3   wavelengths above M / low_freq_factor divided by factor, below M / high_freq_factor kept,
 *            smoothly interpolated in between
 *   longrope Phi-3's LongRoPE (legacy name `su`): per-pair divisors `short_factor` (D/2 of them) while the sequence
 *            length L is at most original_max_position_embeddings M (Phi-3's config.json has it at the top level;
 *            default max_position_embeddings), `long_factor` beyond; cos and sin × attention_factor (default
 *            √(1 + ln(max_position_embeddings / M) / ln M), 1 when that ratio is ≤ 1). As with dynamic NTK, a
 *            decoding graph picks the factors by its KV cache length.
 * Anything else is refused by name.
 */
import type { LlamaConfig } from '../formats/checkpoint.js';

export const ROPE_SCALING_TYPES = ['default', 'linear', 'dynamic', 'yarn', 'llama3', 'longrope', 'su'] as const;

/** What the rope op takes for a scaled model: per-pair inverse frequencies and the cos/sin factor. */
export interface RopeTable { freqs: number[]; scale: number }

const kindOf = (s: Record<string, unknown>): string => String(s.rope_type ?? s.type ?? 'default');

/** Check a `rope_scaling` object; throws naming the problem. Returns the type. */
export function validateRopeScaling(s: Record<string, unknown>, maxSeqLen: number): string {
  const kind = kindOf(s);
  if (!(ROPE_SCALING_TYPES as readonly string[]).includes(kind)) {
    throw new Error(`rope_scaling type "${kind}" is not supported (supported: ${ROPE_SCALING_TYPES.join(', ')})`);
  }
  if (kind === 'default') return kind;
  const pos = (k: string, required: boolean): void => {
    const v = s[k];
    if (v === undefined || v === null) {
      if (required) throw new Error(`rope_scaling "${kind}" needs ${k}`);
      return;
    }
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new Error(`rope_scaling ${k} is ${JSON.stringify(v)}, expected a positive number`);
  };
  if (kind === 'longrope' || kind === 'su') {
    for (const k of ['short_factor', 'long_factor']) {
      const v = s[k];
      if (!Array.isArray(v) || v.length === 0) throw new Error(`rope_scaling "${kind}" needs ${k} (a list of per-frequency factors)`);
      if (!v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) throw new Error(`rope_scaling ${k} must hold positive numbers`);
    }
    pos('original_max_position_embeddings', false); pos('attention_factor', false);
    if (!(maxSeqLen > 0)) throw new Error(`max_position_embeddings is ${maxSeqLen}`);
    return kind;
  }
  pos('factor', true);
  if (kind === 'llama3') {
    pos('low_freq_factor', true); pos('high_freq_factor', true); pos('original_max_position_embeddings', true);
    if (!((s.high_freq_factor as number) > (s.low_freq_factor as number))) throw new Error('rope_scaling llama3 needs high_freq_factor > low_freq_factor');
  }
  if (kind === 'yarn' || kind === 'dynamic') pos('original_max_position_embeddings', false);
  if (kind === 'yarn') {
    pos('beta_fast', false); pos('beta_slow', false); pos('attention_factor', false);
    // DeepSeek's mscale variants and untruncated correction dimensions would change the result: refused, not ignored.
    for (const k of ['mscale', 'mscale_all_dim']) {
      if (s[k] !== undefined && s[k] !== null && s.attention_factor === undefined) throw new Error(`rope_scaling yarn with ${k} is not supported (give attention_factor instead)`);
    }
    if (s.truncate === false) throw new Error('rope_scaling yarn with truncate: false is not supported');
  }
  if (!(maxSeqLen > 0)) throw new Error(`max_position_embeddings is ${maxSeqLen}`);
  return kind;
}

/**
 * The rope op's table for `config` at sequence length `length` (only dynamic NTK depends on it), or undefined
 * when rotary positions use rope_theta alone (the op's own, unchanged path).
 */
export function ropeTable(config: LlamaConfig, headDim: number, length: number): RopeTable | undefined {
  const D = headDim, half = D / 2, theta = config.ropeTheta;
  const base = (b: number): number[] => Array.from({ length: half }, (_, i) => Math.pow(b, (-2 * i) / D));
  const divisors = config.ropeFreqFactors;
  const s = config.ropeScaling;
  const kind = s ? validateRopeScaling(s, config.maxSeqLen) : 'default';
  let freqs: number[] | undefined, scale = 1;
  const factor = s?.factor as number;
  const orig = (s?.original_max_position_embeddings as number | undefined) ?? config.maxSeqLen;
  if (kind === 'linear') freqs = base(theta).map((f) => f / factor);
  else if (kind === 'dynamic') {
    if (length > orig) freqs = base(theta * Math.pow(factor * length / orig - (factor - 1), D / (D - 2)));
  } else if (kind === 'yarn') {
    const betaFast = (s!.beta_fast as number | undefined) ?? 32, betaSlow = (s!.beta_slow as number | undefined) ?? 1;
    // The pair index whose wavelength makes `rotations` turns over the original context.
    const dimFor = (rotations: number): number => (D * Math.log(orig / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
    const lo = Math.max(Math.floor(dimFor(betaFast)), 0), hi0 = Math.min(Math.ceil(dimFor(betaSlow)), D - 1);
    const hi = hi0 === lo ? hi0 + 0.001 : hi0;
    freqs = base(theta).map((f, i) => {
      const ramp = Math.min(Math.max((i - lo) / (hi - lo), 0), 1), keep = 1 - ramp;
      return (f / factor) * (1 - keep) + f * keep;
    });
    scale = (s!.attention_factor as number | undefined) ?? (factor <= 1 ? 1 : 0.1 * Math.log(factor) + 1);
  } else if (kind === 'llama3') {
    const low = s!.low_freq_factor as number, high = s!.high_freq_factor as number;
    const lowWave = orig / low, highWave = orig / high;
    freqs = base(theta).map((f) => {
      const wave = (2 * Math.PI) / f;
      if (wave < highWave) return f;
      if (wave > lowWave) return f / factor;
      const smooth = (orig / wave - low) / (high - low);
      return (1 - smooth) * (f / factor) + smooth * f;
    });
  }
  else if (kind === 'longrope' || kind === 'su') {
    const ext = (length > orig ? s!.long_factor : s!.short_factor) as number[];
    if (ext.length !== half) throw new Error(`rope_scaling ${length > orig ? 'long' : 'short'}_factor has ${ext.length} entries, expected ${half} (head size / 2)`);
    freqs = base(theta).map((f, i) => f / ext[i]!);
    const ratio = config.maxSeqLen / orig;
    scale = (s!.attention_factor as number | undefined) ?? (ratio <= 1 ? 1 : Math.sqrt(1 + Math.log(ratio) / Math.log(orig)));
  }
  if (divisors) {
    if (divisors.length !== half) throw new Error(`rope frequency factors have ${divisors.length} entries, expected ${half} (head size / 2)`);
    freqs = (freqs ?? base(theta)).map((f, i) => f / divisors[i]!);
  }
  return freqs ? { freqs, scale } : undefined;
}
