// A store-only ZIP writer (no compression: PNGs are compressed already). makeZip([{name, blob, date}]) -> Blob.
// Local header + data for each file, then the central directory and its end record (APPNOTE 6.3.x, UTF-8 names).
"use strict";
(function () {
  const CRC_TABLE = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    CRC_TABLE[n] = c >>> 0;
  }

  function crc32(bytes) {
    let crc = 0xffffffff;
    for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
    return (crc ^ 0xffffffff) >>> 0;
  }

  function dosTime(date) {
    const time = (date.getHours() << 11) | (date.getMinutes() << 5) | (date.getSeconds() >> 1);
    const day = ((Math.max(date.getFullYear(), 1980) - 1980) << 9) | ((date.getMonth() + 1) << 5) | date.getDate();
    return [time, day];
  }

  function header(size) {
    const buffer = new ArrayBuffer(size);
    return [new DataView(buffer), new Uint8Array(buffer)];
  }

  async function makeZip(files) {
    const encoder = new TextEncoder();
    const parts = [];
    const central = [];
    let offset = 0;
    for (const file of files) {
      const name = encoder.encode(file.name);
      const data = new Uint8Array(await file.blob.arrayBuffer());
      const crc = crc32(data);
      const [time, day] = dosTime(file.date || new Date());
      const [local, localBytes] = header(30 + name.length);
      local.setUint32(0, 0x04034b50, true);
      local.setUint16(4, 20, true);           // version needed: 2.0
      local.setUint16(6, 0x0800, true);       // flags: UTF-8 names
      local.setUint16(8, 0, true);            // method: stored
      local.setUint16(10, time, true);
      local.setUint16(12, day, true);
      local.setUint32(14, crc, true);
      local.setUint32(18, data.length, true);
      local.setUint32(22, data.length, true);
      local.setUint16(26, name.length, true);
      local.setUint16(28, 0, true);
      localBytes.set(name, 30);
      parts.push(localBytes, data);
      const [entry, entryBytes] = header(46 + name.length);
      entry.setUint32(0, 0x02014b50, true);
      entry.setUint16(4, 20, true);           // made by: 2.0
      entry.setUint16(6, 20, true);
      entry.setUint16(8, 0x0800, true);
      entry.setUint16(10, 0, true);
      entry.setUint16(12, time, true);
      entry.setUint16(14, day, true);
      entry.setUint32(16, crc, true);
      entry.setUint32(20, data.length, true);
      entry.setUint32(24, data.length, true);
      entry.setUint16(28, name.length, true);
      entry.setUint32(42, offset, true);      // the local header's offset; comment, disk, attributes stay 0
      entryBytes.set(name, 46);
      central.push(entryBytes);
      offset += localBytes.length + data.length;
    }
    const centralSize = central.reduce((sum, part) => sum + part.length, 0);
    const [end, endBytes] = header(22);
    end.setUint32(0, 0x06054b50, true);
    end.setUint16(8, files.length, true);
    end.setUint16(10, files.length, true);
    end.setUint32(12, centralSize, true);
    end.setUint32(16, offset, true);
    return new Blob([...parts, ...central, endBytes], { type: "application/zip" });
  }

  window.makeZip = makeZip;
})();
