// A hand-drawn canvas timeline: step lines for gauges (leases held) and ticks along the
// bottom for refusals. Drawn by hand rather than with a charting library so the page has
// no dependency and no build step; it only needs lines, ticks and a few labels.

/**
 * @typedef {object} Series
 * @property {string} key     property of a sample
 * @property {string} label
 * @property {string} color   CSS colour
 * @property {number[]} [dash]
 * @property {number} [width]   line width (a wider line drawn first stays visible under a narrower one)
 */

/**
 * @typedef {object} Marker
 * @property {string} key     a cumulative counter in each sample: a tick where it grows
 * @property {string} label
 * @property {string} color
 */

export class Timeline {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {object} config
   * @param {Series[]} config.series
   * @param {Marker[]} config.markers
   * @param {(sample: any) => string} config.timeLabel   label of a sample's time (x axis ends)
   * @param {string} config.description                 what the chart shows, for the accessible name
   */
  constructor(canvas, config) {
    this.canvas = canvas;
    this.config = config;
    /** @type {any[]} */
    this.samples = [];
    /** @type {number | null} a horizontal dashed line (the per-user limit) */
    this.limit = null;
    // Redraw at the new size when the layout changes (phone rotation, window resize).
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  /**
   * @param {any[]} samples
   * @param {number | null} [limit]
   */
  update(samples, limit = null) {
    this.samples = samples;
    this.limit = limit;
    this.draw();
    this.#describe();
  }

  draw() {
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (width === 0 || height === 0) return;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const style = getComputedStyle(canvas);
    const ink = style.getPropertyValue('--chart-ink').trim() || '#444';
    const grid = style.getPropertyValue('--chart-grid').trim() || '#ddd';
    // Canvas does not resolve CSS variables itself; colours may be given as var(--name).
    const paint = (/** @type {string} */ c) => (c.startsWith('var(') ? style.getPropertyValue(c.slice(4, -1)).trim() || ink : c);
    ctx.font = '11px system-ui, sans-serif';

    const pad = { left: 28, right: 8, top: 8, bottom: 30 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const samples = this.samples;
    let top = this.limit ?? 1;
    for (const s of samples) for (const series of this.config.series) top = Math.max(top, s[series.key]);
    top = Math.max(1, Math.ceil(top * 1.15));
    const n = Math.max(samples.length - 1, 1);
    const x = (/** @type {number} */ i) => pad.left + (plotW * i) / n;
    const y = (/** @type {number} */ v) => pad.top + plotH - (plotH * v) / top;

    // Horizontal grid with a few integer labels.
    ctx.strokeStyle = grid;
    ctx.fillStyle = ink;
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    const step = Math.max(1, Math.ceil(top / 4));
    for (let v = 0; v <= top; v += step) {
      ctx.beginPath();
      ctx.moveTo(pad.left, Math.round(y(v)) + 0.5);
      ctx.lineTo(width - pad.right, Math.round(y(v)) + 0.5);
      ctx.stroke();
      ctx.fillText(String(v), pad.left - 4, y(v));
    }

    if (this.limit !== null) {
      ctx.save();
      ctx.setLineDash([4, 4]);
      ctx.strokeStyle = ink;
      ctx.beginPath();
      ctx.moveTo(pad.left, Math.round(y(this.limit)) + 0.5);
      ctx.lineTo(width - pad.right, Math.round(y(this.limit)) + 0.5);
      ctx.stroke();
      ctx.restore();
      ctx.textAlign = 'left';
      ctx.textBaseline = 'bottom';
      ctx.fillText(`limit ${this.limit}`, pad.left + 4, y(this.limit) - 2);
    }

    if (samples.length === 0) return;

    // Step lines: a value holds until the next sample.
    for (const series of this.config.series) {
      ctx.save();
      ctx.strokeStyle = paint(series.color);
      ctx.lineWidth = series.width ?? 2;
      if (series.dash) ctx.setLineDash(series.dash);
      ctx.beginPath();
      samples.forEach((s, i) => {
        const v = s[series.key];
        if (i === 0) ctx.moveTo(x(0), y(v));
        else {
          ctx.lineTo(x(i), y(samples[i - 1][series.key]));
          ctx.lineTo(x(i), y(v));
        }
      });
      if (samples.length === 1) ctx.lineTo(x(1), y(samples[0][series.key]));
      ctx.stroke();
      ctx.restore();
    }

    // Refusal ticks below the plot, one row per marker.
    this.config.markers.forEach((marker, row) => {
      ctx.fillStyle = paint(marker.color);
      const base = pad.top + plotH + 6 + row * 8;
      for (let i = 1; i < samples.length; i++) {
        if (samples[i][marker.key] > samples[i - 1][marker.key]) ctx.fillRect(x(i) - 1.5, base, 3, 6);
      }
    });

    ctx.fillStyle = ink;
    ctx.textBaseline = 'alphabetic';
    ctx.textAlign = 'left';
    ctx.fillText(this.config.timeLabel(samples[0]), pad.left, height - 2);
    ctx.textAlign = 'right';
    ctx.fillText(this.config.timeLabel(samples[samples.length - 1]), width - pad.right, height - 2);
  }

  /** Keeps the canvas's accessible name a sentence with the current numbers. */
  #describe() {
    const last = this.samples[this.samples.length - 1];
    if (!last) return;
    const parts = this.config.series.map((s) => `${s.label}: ${last[s.key]}`);
    const refusals = this.config.markers.map((m) => `${m.label}: ${last[m.key]}`);
    this.canvas.setAttribute('aria-label', `${this.config.description}. Now ${parts.join(', ')}. ${refusals.join(', ')}.`);
  }
}
