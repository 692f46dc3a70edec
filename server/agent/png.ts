/**
 * Just enough imaging for guest thumbnails, with no native dependencies: read the
 * binary PPM that QEMU's `screendump` writes, shrink it with a box filter (each
 * output pixel is the average of the source pixels it covers), and write a PNG
 * (8-bit RGB, filter "Up", deflated with node's zlib; chunk CRCs with zlib.crc32).
 */
import zlib from "node:zlib";

/** An RGB image: 3 bytes a pixel, rows top to bottom, no padding. */
export interface RgbImage {
  width: number;
  height: number;
  data: Buffer;
}

/** Reads a binary PPM (P6, maxval ≤ 255), as QEMU's screendump writes it ("P6\n<w> <h>\n255\n"). */
export function parsePpm(file: Buffer): RgbImage {
  let pos = 0;
  const token = (): string => {
    // Whitespace and "#" comments separate the header's fields.
    for (;;) {
      while (pos < file.length && /\s/.test(String.fromCharCode(file[pos]!))) pos++;
      if (file[pos] !== 0x23) break;
      while (pos < file.length && file[pos] !== 0x0a) pos++;
    }
    const start = pos;
    while (pos < file.length && !/\s/.test(String.fromCharCode(file[pos]!))) pos++;
    return file.toString("latin1", start, pos);
  };
  if (token() !== "P6") throw new Error("not a binary PPM (P6) image");
  const width = Number(token());
  const height = Number(token());
  const maxval = Number(token());
  pos++; // the single whitespace byte before the pixels
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > 16384 || height > 16384) {
    throw new Error(`unusable PPM size ${width}x${height}`);
  }
  if (maxval !== 255) throw new Error(`unsupported PPM maxval ${maxval}`);
  const bytes = width * height * 3;
  if (file.length - pos < bytes) throw new Error("the PPM image is truncated");
  return { width, height, data: file.subarray(pos, pos + bytes) };
}

/**
 * Shrinks an image to `width` pixels wide (never enlarges), keeping its aspect ratio,
 * by averaging every source pixel into the output pixel that covers it.
 */
export function scaleDown(image: RgbImage, width: number): RgbImage {
  const outW = Math.max(1, Math.min(Math.floor(width), image.width));
  const outH = Math.max(1, Math.round((image.height * outW) / image.width));
  if (outW === image.width && outH === image.height) return image;
  const span = (i: number, out: number, src: number): [number, number] => {
    const a = Math.floor((i * src) / out);
    return [a, Math.max(a + 1, Math.floor(((i + 1) * src) / out))];
  };
  const cols = Array.from({ length: outW }, (_, x) => span(x, outW, image.width));
  const out = Buffer.alloc(outW * outH * 3);
  const sums = new Float64Array(outW * 3);
  for (let y = 0; y < outH; y++) {
    const [y0, y1] = span(y, outH, image.height);
    sums.fill(0);
    for (let sy = y0; sy < y1; sy++) {
      const row = sy * image.width * 3;
      for (let x = 0; x < outW; x++) {
        const [x0, x1] = cols[x]!;
        let r = 0;
        let g = 0;
        let b = 0;
        for (let i = row + x0 * 3, end = row + x1 * 3; i < end; i += 3) {
          r += image.data[i]!;
          g += image.data[i + 1]!;
          b += image.data[i + 2]!;
        }
        sums[x * 3] = sums[x * 3]! + r;
        sums[x * 3 + 1] = sums[x * 3 + 1]! + g;
        sums[x * 3 + 2] = sums[x * 3 + 2]! + b;
      }
    }
    for (let x = 0; x < outW; x++) {
      const [x0, x1] = cols[x]!;
      const n = (x1 - x0) * (y1 - y0);
      const o = (y * outW + x) * 3;
      out[o] = Math.round(sums[x * 3]! / n);
      out[o + 1] = Math.round(sums[x * 3 + 1]! / n);
      out[o + 2] = Math.round(sums[x * 3 + 2]! / n);
    }
  }
  return { width: outW, height: outH, data: out };
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(data, zlib.crc32(head.subarray(4))) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** An 8-bit RGB PNG of the image; every row uses filter 2 ("Up", which suits screens). */
export function encodePng(image: RgbImage): Buffer {
  const stride = image.width * 3;
  const raw = Buffer.alloc((stride + 1) * image.height);
  for (let y = 0; y < image.height; y++) {
    const o = y * (stride + 1);
    raw[o] = 2;
    const row = y * stride;
    for (let i = 0; i < stride; i++) {
      const above = y > 0 ? image.data[row - stride + i]! : 0;
      raw[o + 1 + i] = (image.data[row + i]! - above) & 0xff;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(image.width, 0);
  ihdr.writeUInt32BE(image.height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method 0
  ihdr[12] = 0; // no interlace
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(raw, { level: 6 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
