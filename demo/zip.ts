/**
 * A zip archive of stored (uncompressed) files, so the adapter folder downloads in one click. Safetensors
 * of float32 values barely compress, so storing costs little and needs no deflate code.
 * Layout: PKWARE APPNOTE 6.3.x §4.3 (local headers, central directory, end record).
 */

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function zipStored(files: readonly { name: string; data: Uint8Array }[]): Uint8Array<ArrayBuffer> {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const header = (size: number, fill: (v: DataView) => void): Uint8Array => {
    const b = new Uint8Array(size);
    fill(new DataView(b.buffer));
    return b;
  };
  for (const f of files) {
    const name = enc.encode(f.name), crc = crc32(f.data), n = f.data.length;
    // Shared fields: version 2.0, UTF-8 names (flag bit 11), stored, time 00:00 1 Jan 1980.
    const common = (v: DataView, at: number): void => {
      v.setUint16(at, 20, true); v.setUint16(at + 2, 0x800, true); v.setUint16(at + 4, 0, true);
      v.setUint16(at + 6, 0, true); v.setUint16(at + 8, 0x21, true);
      v.setUint32(at + 10, crc, true); v.setUint32(at + 14, n, true); v.setUint32(at + 18, n, true);
      v.setUint16(at + 22, name.length, true);
    };
    parts.push(header(30, (v) => { v.setUint32(0, 0x04034b50, true); common(v, 4); }), name, f.data);
    central.push(header(46, (v) => { v.setUint32(0, 0x02014b50, true); v.setUint16(4, 20, true); common(v, 6); v.setUint32(42, offset, true); }), name);
    offset += 30 + name.length + n;
  }
  const dirSize = central.reduce((a, b) => a + b.length, 0);
  const end = header(22, (v) => {
    v.setUint32(0, 0x06054b50, true); v.setUint16(8, files.length, true); v.setUint16(10, files.length, true);
    v.setUint32(12, dirSize, true); v.setUint32(16, offset, true);
  });
  const all = [...parts, ...central, end];
  const out = new Uint8Array(all.reduce((a, b) => a + b.length, 0));
  let at = 0;
  for (const p of all) { out.set(p, at); at += p.length; }
  return out;
}
