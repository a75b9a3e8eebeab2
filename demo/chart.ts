/**
 * A loss chart on a canvas: one line per training run, steps on x, loss on y, with a legend. Small
 * enough that a chart library (tens of kilobytes) would cost more than it gives here.
 */

export interface Series {
  readonly label: string;
  readonly color: string;
  readonly values: readonly number[];
}

/** About `n` round tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n: number): number[] {
  const raw = (hi - lo) / n || 1;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

export function drawChart(canvas: HTMLCanvasElement, series: readonly Series[]): void {
  const dpr = globalThis.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext('2d')!;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  g.font = '11px system-ui, sans-serif';
  const pad = { l: 44, r: 10, t: 10, b: 24 };
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  const steps = Math.max(2, ...series.map((s) => s.values.length));
  const yLo = all.length ? Math.min(0, ...all) : 0, yHi = all.length ? Math.max(...all) * 1.05 || 1 : 1;
  const x = (step: number): number => pad.l + ((step - 1) / (steps - 1)) * (w - pad.l - pad.r);
  const y = (v: number): number => h - pad.b - ((v - yLo) / (yHi - yLo)) * (h - pad.t - pad.b);

  g.strokeStyle = '#ddd';
  g.fillStyle = '#666';
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (const v of ticks(yLo, yHi, 4)) {
    g.beginPath(); g.moveTo(pad.l, y(v)); g.lineTo(w - pad.r, y(v)); g.stroke();
    g.fillText(String(v), pad.l - 4, y(v));
  }
  g.textAlign = 'center';
  g.textBaseline = 'top';
  for (const s of ticks(1, steps, 6)) if (s >= 1) g.fillText(String(s), x(s), h - pad.b + 6);

  series.forEach((s, i) => {
    // Earlier runs are drawn wider, so a later run that retraces one (another backend) leaves it visible.
    g.lineWidth = Math.min(6, 1.5 + 1.5 * (series.length - 1 - i));
    g.strokeStyle = s.color;
    g.beginPath();
    s.values.forEach((v, k) => (k ? g.lineTo(x(k + 1), y(v)) : g.moveTo(x(1), y(v))));
    g.stroke();
    g.fillStyle = s.color;
    g.textAlign = 'right';
    g.fillText(s.label, w - pad.r, pad.t + i * 14);
  });
  if (!all.length) {
    g.fillStyle = '#999';
    g.textAlign = 'center';
    g.fillText('loss per step appears here while training', w / 2, h / 2);
  }
}
