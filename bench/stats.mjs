// The statistics the churn benchmarks report: the median of the rounds, and how far that
// median can be trusted. Plain functions, no dependencies, so bench/report.mjs can compute
// from a result file what the benchmark itself printed.

/** @param {number[]} xs */
export function median(xs) {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * A percentile bootstrap interval of the median of `xs`: the median of `resamples`
 * resamplings (with replacement) of the rounds, their `(1 - level) / 2` and
 * `(1 + level) / 2` quantiles. It says how far the reported median could move with other
 * rounds of the same spread: a target inside the interval is not settled by the run. The
 * resampling is seeded (mulberry32), so a result file always gives the same interval.
 * @param {number[]} xs  one value per round
 * @param {{ resamples?: number, level?: number, seed?: number }} [options]
 * @returns {[number, number]}
 */
export function medianInterval(xs, options = {}) {
  const { resamples = 4000, level = 0.95, seed = 1 } = options;
  if (xs.length === 0) return [Number.NaN, Number.NaN];
  let state = seed >>> 0;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const medians = new Float64Array(resamples);
  const sample = new Array(xs.length);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < xs.length; i++) sample[i] = xs[Math.floor(random() * xs.length)];
    medians[r] = median(sample);
  }
  medians.sort();
  const at = (/** @type {number} */ q) => medians[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))];
  return [at((1 - level) / 2), at((1 + level) / 2)];
}
