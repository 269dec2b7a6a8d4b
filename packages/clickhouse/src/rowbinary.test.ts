import { describe, expect, it } from 'vitest';
import { RowBinaryWriter } from './rowbinary';

describe('RowBinaryWriter.chunkOf', () => {
  it('copies a range of bytes written before, as chunk of that range would, growing the buffer', () => {
    const src = new RowBinaryWriter(8).string('customer').string('ext').u64(7).bytes().slice();
    const w = new RowBinaryWriter(2);
    w.chunkOf(src, 0, 9).byte(1).chunkOf(src, 9, src.length).chunkOf(src, 3, 3);
    const want = new RowBinaryWriter(2).chunk(src.subarray(0, 9)).byte(1).chunk(src.subarray(9)).bytes();
    expect([...w.bytes()]).toEqual([...want]);
    expect(Buffer.from(w.bytes().subarray(1, 9)).toString()).toBe('customer');
    expect(w.length).toBe(src.length + 1);
  });
});
