// Small helpers that put client values into error messages, bounded in length.

const MAX_SHOWN = 64;

/** The kind of a decoded value, as a client would call it. */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  const t = typeof v;
  if (t !== 'object') return t;
  if (Array.isArray(v)) return 'array';
  if (v instanceof Uint8Array || v instanceof ArrayBuffer) return 'binary';
  if (v instanceof Date) return 'date';
  if (v instanceof Map) return 'map';
  if (v instanceof Set) return 'set';
  if (isPlainObject(v)) return 'object';
  // msgpack extensions msgpackr decodes (RegExp, Error, its 0xc1 marker...)
  const ctor = (v as { constructor?: { name?: unknown } }).constructor;
  return `extension value${typeof ctor?.name === 'string' ? ` (${ctor.name})` : ''}`;
}

/** A value as it would appear in the request: strings quoted (and cut at 64 characters), scalars as is, else its kind. */
export function show(v: unknown): string {
  if (typeof v === 'string') return quote(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  if (typeof v === 'bigint') return `${v}`;
  return typeName(v);
}

export function quote(s: string): string {
  return JSON.stringify(s.length > MAX_SHOWN ? `${s.slice(0, MAX_SHOWN)}…` : s);
}

/** `properties.region`, or `properties["a b"]` when the key is not a plain identifier. */
export function propertyField(base: string, key: string): string {
  if (key.length === 0 || key.length > MAX_SHOWN) return `${base}[${quote(key)}]`;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    const plain =
      (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 36 || (i > 0 && c >= 48 && c <= 57);
    if (!plain) return `${base}[${quote(key)}]`;
  }
  return `${base}.${key}`;
}

/** Plain objects only: decoded JSON objects and msgpack maps, not dates, sets, buffers or class instances. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
