/**
 * The instance an IDPT prompt is generated from: the mean base embedding of a row's context tokens. In a
 * causal language model the prompt comes before every position, so it may depend only on tokens no
 * position predicts: with targets, the tokens up to the row's first predicted one (the prompt of a
 * prompt/response example; just BOS in plain text, where IDPT is then prompt tuning); without targets (a
 * prompt to continue), every token.
 */
export function instanceFeatures(table: Float32Array, dim: number, ids: ArrayLike<number>, targets: ArrayLike<number> | undefined, batch: number, seq: number): Float32Array {
  const out = new Float32Array(batch * dim);
  for (let b = 0; b < batch; b++) {
    // Position t's target is token t + 1: the context is tokens 0 … f, f the first position with a target.
    let last = seq - 1;
    if (targets) {
      for (let t = 0; t < seq; t++) if (targets[b * seq + t] !== -100) { last = t; break; }
    }
    const acc = new Float64Array(dim);
    for (let t = 0; t <= last; t++) {
      const id = ids[b * seq + t]!;
      for (let j = 0; j < dim; j++) acc[j] += table[id * dim + j]!;
    }
    for (let j = 0; j < dim; j++) out[b * dim + j] = acc[j]! / (last + 1);
  }
  return out;
}
