/** A small text scatter plot of the searched points: trainable parameters (log scale) against held-out loss. */
import type { Objectives } from './pareto.js';

/**
 * Rows of text: x is log10(trainable parameters), y is held-out loss (lower at the bottom). Front points are
 * drawn as '*', the chosen one as '@', the others as 'o' (a front point wins a shared cell).
 */
export function asciiScatter(points: readonly Objectives[], front: readonly number[], chosen?: number, o: { width?: number; height?: number } = {}): string {
  const W = o.width ?? 56, H = o.height ?? 14;
  if (!points.length) return '(no points)';
  const xs = points.map((p) => Math.log10(Math.max(1, p.params))), ys = points.map((p) => p.loss);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const col = (x: number): number => (x1 > x0 ? Math.round(((x - x0) / (x1 - x0)) * (W - 1)) : Math.floor(W / 2));
  const row = (y: number): number => (y1 > y0 ? Math.round(((y1 - y) / (y1 - y0)) * (H - 1)) : Math.floor(H / 2));
  const grid = Array.from({ length: H }, () => new Array<string>(W).fill(' '));
  const onFront = new Set(front);
  const rank = (c: string): number => ({ ' ': 0, o: 1, '*': 2, '@': 3 })[c] ?? 0;
  points.forEach((_, i) => {
    const mark = i === chosen ? '@' : onFront.has(i) ? '*' : 'o';
    const cell = grid[row(ys[i]!)]!;
    const c = col(xs[i]!);
    if (rank(mark) > rank(cell[c]!)) cell[c] = mark;
  });
  const label = (v: number): string => v.toFixed(4).padStart(8);
  const lines = grid.map((r, i) => `${i === 0 ? label(y1) : i === H - 1 ? label(y0) : ' '.repeat(8)} |${r.join('')}`);
  const fmt = (e: number): string => Math.round(10 ** e).toLocaleString('en-US');
  const axis = `${' '.repeat(9)}+${'-'.repeat(W)}`;
  const left = fmt(x0), right = fmt(x1);
  const ticks = `${' '.repeat(10)}${left}${' '.repeat(Math.max(1, W - left.length - right.length))}${right}`;
  return [`held-out loss`, ...lines, axis, ticks, `${' '.repeat(10)}trainable parameters (log scale)   * front  @ chosen  o dominated`].join('\n');
}
