/**
 * LaMDA++'s "lite-weight" rank allocation from the pre-trained weights alone (no gradients, no training
 * signal): each module's spectrum is normalised to energy fractions e_{k,i} = σ²_{k,i} / Σ_j σ²_{k,j}; the
 * budget r̄·K goes to the K modules' largest fractions, pooled (each module keeps at least its first
 * direction and at most min(in, out)). A module whose energy is spread over many directions gets more rank,
 * one dominated by a few directions less: the kept directions capture comparable shares of every spectrum.
 */
export function allocateRanks(spectra: readonly Float64Array[], budget: number): number[] {
  const fractions = spectra.map((s) => {
    const total = s.reduce((a, v) => a + v * v, 0);
    return Array.from(s, (v) => (total > 0 ? (v * v) / total : 0));
  });
  if (budget < spectra.length) throw new Error(`lamda++: a budget of ${budget} cannot give each of ${spectra.length} modules a rank`);
  const capacity = spectra.reduce((a, s) => a + s.length, 0);
  if (budget > capacity) throw new Error(`lamda++: a budget of ${budget} exceeds the ${capacity} singular directions of the targeted modules`);
  const ranks = spectra.map(() => 1);
  const rest = fractions.flatMap((f, k) => f.slice(1).map((v, i) => ({ v, k, i: i + 1 }))).sort((a, b) => b.v - a.v || a.k - b.k || a.i - b.i);
  for (const { k } of rest.slice(0, budget - spectra.length)) ranks[k]!++;
  return ranks;
}
