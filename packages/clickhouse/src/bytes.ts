// The growing byte buffer under both payload writers (tsv.ts, rowbinary.ts). No ClickHouse
// client here, so worker threads can load it.

export abstract class ByteWriter {
  protected buf: Uint8Array;
  protected at = 0;

  /** `reuse`: a buffer to write into (its old bytes are never read), when it holds `sizeHint` bytes. */
  constructor(sizeHint = 65_536, reuse?: ArrayBuffer) {
    this.buf = reuse && reuse.byteLength >= sizeHint && reuse.byteLength >= 16 ? new Uint8Array(reuse) : new Uint8Array(Math.max(16, sizeHint));
  }

  get length(): number {
    return this.at;
  }

  /** Makes room for `n` more bytes (doubling the buffer, at least). */
  protected room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.at + n));
    next.set(this.buf.subarray(0, this.at));
    this.buf = next;
    this.grown();
  }

  /** Called after the buffer was replaced by a larger one. */
  protected grown(): void {}

  /** ASCII text needing no escaping, bytes as they are. */
  raw(s: string): this {
    this.room(s.length);
    const b = this.buf;
    let at = this.at;
    for (let i = 0; i < s.length; i++) b[at++] = s.charCodeAt(i);
    this.at = at;
    return this;
  }

  /** Bytes written before by a writer of the same kind, copied as they are. */
  chunk(bytes: Uint8Array): this {
    // Short pieces (ids, prefixes of a row): a loop costs less than a call into the native copy.
    const n = bytes.length;
    if (this.at + n > this.buf.length) this.room(n);
    const b = this.buf;
    let at = this.at;
    for (let i = 0; i < n; i++) b[at++] = bytes[i]!;
    this.at = at;
    return this;
  }

  /** One raw byte. */
  byte(c: number): this {
    this.room(1);
    this.buf[this.at++] = c;
    return this;
  }

  /** Drops what was written past `length` (a row given up). */
  truncate(length: number): void {
    if (!(length >= 0 && length <= this.at)) throw new RangeError(`${this.constructor.name}.truncate(${length}): outside 0..${this.at}`);
    this.at = length;
  }

  /** The bytes written: a view of this writer's own ArrayBuffer (which can be moved to another thread). */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.at);
  }
}
