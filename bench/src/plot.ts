// A PNG line chart without a browser or native module: an RGB canvas, a 5x7 bitmap font, and
// a PNG encoder on node:zlib. Enough for "throughput and backlog over time".
import { deflateSync } from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** PNG (8-bit RGB) of a width x height RGB pixel buffer. */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0; // filter: none
    Buffer.from(rgb.buffer, rgb.byteOffset + y * width * 3, width * 3).copy(raw, y * (width * 3 + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

// 5x7 glyphs, one 5-bit row each (MSB left). Lower case is drawn as upper case.
const FONT: Record<string, number[]> = {
  '0': [14, 17, 19, 21, 25, 17, 14], '1': [4, 12, 4, 4, 4, 4, 14], '2': [14, 17, 1, 2, 4, 8, 31], '3': [30, 1, 1, 14, 1, 1, 30],
  '4': [2, 6, 10, 18, 31, 2, 2], '5': [31, 16, 30, 1, 1, 17, 14], '6': [6, 8, 16, 30, 17, 17, 14], '7': [31, 1, 2, 4, 8, 8, 8],
  '8': [14, 17, 17, 14, 17, 17, 14], '9': [14, 17, 17, 15, 1, 2, 12],
  A: [14, 17, 17, 31, 17, 17, 17], B: [30, 17, 17, 30, 17, 17, 30], C: [14, 17, 16, 16, 16, 17, 14], D: [30, 17, 17, 17, 17, 17, 30],
  E: [31, 16, 16, 30, 16, 16, 31], F: [31, 16, 16, 30, 16, 16, 16], G: [14, 17, 16, 23, 17, 17, 15], H: [17, 17, 17, 31, 17, 17, 17],
  I: [14, 4, 4, 4, 4, 4, 14], J: [7, 2, 2, 2, 2, 18, 12], K: [17, 18, 20, 24, 20, 18, 17], L: [16, 16, 16, 16, 16, 16, 31],
  M: [17, 27, 21, 21, 17, 17, 17], N: [17, 17, 25, 21, 19, 17, 17], O: [14, 17, 17, 17, 17, 17, 14], P: [30, 17, 17, 30, 16, 16, 16],
  Q: [14, 17, 17, 17, 21, 18, 13], R: [30, 17, 17, 30, 20, 18, 17], S: [15, 16, 16, 14, 1, 1, 30], T: [31, 4, 4, 4, 4, 4, 4],
  U: [17, 17, 17, 17, 17, 17, 14], V: [17, 17, 17, 17, 17, 10, 4], W: [17, 17, 17, 21, 21, 21, 10], X: [17, 17, 10, 4, 10, 17, 17],
  Y: [17, 17, 10, 4, 4, 4, 4], Z: [31, 1, 2, 4, 8, 16, 31],
  ' ': [0, 0, 0, 0, 0, 0, 0], '.': [0, 0, 0, 0, 0, 12, 12], ',': [0, 0, 0, 0, 12, 4, 8], ':': [0, 12, 12, 0, 12, 12, 0],
  '-': [0, 0, 0, 31, 0, 0, 0], '/': [1, 1, 2, 4, 8, 16, 16], '(': [2, 4, 8, 8, 8, 4, 2], ')': [8, 4, 2, 2, 2, 4, 8],
  '%': [24, 25, 2, 4, 8, 19, 3], '=': [0, 0, 31, 0, 31, 0, 0], '+': [0, 4, 4, 31, 4, 4, 0], '_': [0, 0, 0, 0, 0, 0, 31],
};

type Rgb = [number, number, number];

class Canvas {
  readonly px: Uint8Array;
  constructor(readonly w: number, readonly h: number) {
    this.px = new Uint8Array(w * h * 3).fill(255);
  }
  set(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.w || y >= this.h) return;
    const i = (y * this.w + x) * 3;
    this.px[i] = c[0];
    this.px[i + 1] = c[1];
    this.px[i + 2] = c[2];
  }
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thick = 1): void {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    for (let i = 0; i <= n; i++) {
      const x = x0 + ((x1 - x0) * i) / n;
      const y = y0 + ((y1 - y0) * i) / n;
      for (let d = 0; d < thick; d++) this.set(x, y + d, c);
    }
  }
  text(x: number, y: number, s: string, c: Rgb, scale = 1): void {
    for (const ch of s) {
      const g = FONT[ch] ?? FONT[ch.toUpperCase()] ?? FONT[' ']!;
      for (let r = 0; r < 7; r++) for (let b = 0; b < 5; b++) if (g[r]! & (16 >> b)) for (let sy = 0; sy < scale; sy++) for (let sx = 0; sx < scale; sx++) this.set(x + b * scale + sx, y + r * scale + sy, c);
      x += 6 * scale;
    }
  }
}

export interface ChartSeries {
  name: string;
  values: number[];
  color: Rgb;
  /** Left axis (throughput) or right axis (backlog). */
  axis: 'left' | 'right';
}

/** An axis label: 1.2M, 35K, 4.5K, 120, 2, 0.8. */
export const axisLabel = (v: number) => (v >= 1e6 ? `${(v / 1e6).toFixed(1)}M` : v >= 1e4 ? `${Math.round(v / 1e3)}K` : v >= 1e3 ? `${(v / 1e3).toFixed(1)}K` : v >= 10 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1));

/** Line chart of series over x (seconds), two y axes, phase labels along the top. */
export function lineChart(opts: { title: string; x: number[]; series: ChartSeries[]; leftLabel: string; rightLabel: string; xLabel?: string; marks?: { x: number; label: string }[] }): Buffer {
  const W = 1000, H = 500, L = 80, R = 80, T = 50, B = 60;
  const cv = new Canvas(W, H);
  const black: Rgb = [0, 0, 0];
  const grey: Rgb = [220, 220, 220];
  cv.text(L, 12, opts.title, black, 2);
  const xmax = Math.max(1, ...opts.x);
  const maxOf = (axis: 'left' | 'right') => Math.max(1, ...opts.series.filter((s) => s.axis === axis).flatMap((s) => s.values.filter(Number.isFinite))) * 1.1;
  const ly = maxOf('left');
  const ry = maxOf('right');
  // An axis none of whose series has a value (e.g. no backlog while only the baseline ran) gets no scale.
  const hasRight = opts.series.some((s) => s.axis === 'right' && s.values.some(Number.isFinite));
  const px = (x: number) => L + ((W - L - R) * x) / xmax;
  const py = (v: number, max: number) => H - B - ((H - T - B) * v) / max;
  for (let i = 0; i <= 5; i++) {
    const y = py((ly * i) / 5, ly);
    cv.line(L, y, W - R, y, grey);
    cv.text(5, y - 3, axisLabel((ly * i) / 5), black);
    if (hasRight) cv.text(W - R + 5, y - 3, axisLabel((ry * i) / 5), black);
  }
  for (let i = 0; i <= 10; i++) {
    const x = px((xmax * i) / 10);
    cv.line(x, H - B, x, H - B + 4, black);
    cv.text(x - 8, H - B + 8, String(Math.round((xmax * i) / 10)), black);
  }
  cv.line(L, T, L, H - B, black);
  cv.line(W - R, T, W - R, H - B, black);
  cv.line(L, H - B, W - R, H - B, black);
  cv.text(L, H - 20, `${opts.xLabel ?? 'seconds'}    left: ${opts.leftLabel}    right: ${opts.rightLabel}`, black);
  for (const m of opts.marks ?? []) {
    const x = px(m.x);
    for (let y = T; y < H - B; y += 4) cv.set(x, y, [150, 150, 150]);
    cv.text(x + 2, T + 2, m.label, [100, 100, 100]);
  }
  let lx = L + 400;
  for (const s of opts.series) {
    const max = s.axis === 'left' ? ly : ry;
    for (let i = 1; i < s.values.length; i++) {
      const a = s.values[i - 1]!, b = s.values[i]!;
      if (Number.isFinite(a) && Number.isFinite(b)) cv.line(px(opts.x[i - 1]!), py(a, max), px(opts.x[i]!), py(b, max), s.color, 2);
    }
    cv.line(lx, 38, lx + 15, 38, s.color, 3);
    cv.text(lx + 18, 34, s.name, black);
    lx += 18 + 6 * s.name.length + 20;
  }
  return encodePng(W, H, cv.px);
}
