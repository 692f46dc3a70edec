/** The thumbnail imaging: PPM in, box-filtered scale, PNG out (decoded back here with zlib). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { encodePng, parsePpm, scaleDown } from "../../server/agent/png";
import { decodePng } from "../helpers/png";

function ppm(width: number, height: number, pixel: (x: number, y: number) => [number, number, number], header = `P6\n${width} ${height}\n255\n`): Buffer {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(pixel(x, y), (y * width + x) * 3);
  return Buffer.concat([Buffer.from(header, "latin1"), data]);
}

describe("parsePpm", () => {
  test("reads QEMU's screendump header and pixels", () => {
    const image = parsePpm(ppm(3, 2, (x, y) => [x * 10, y * 20, 7]));
    assert.equal(image.width, 3);
    assert.equal(image.height, 2);
    assert.deepEqual([...image.data.subarray(0, 6)], [0, 0, 7, 10, 0, 7]);
    assert.deepEqual([...image.data.subarray(15, 18)], [20, 20, 7]);
  });

  test("skips comments and any whitespace in the header", () => {
    const image = parsePpm(ppm(2, 1, () => [1, 2, 3], "P6 # made by hand\n2\t1 255\n"));
    assert.deepEqual([...image.data], [1, 2, 3, 1, 2, 3]);
  });

  test("refuses other formats, odd depths and truncated files", () => {
    assert.throws(() => parsePpm(Buffer.from("P3\n1 1\n255\n0 0 0\n")), /P6/);
    assert.throws(() => parsePpm(ppm(1, 1, () => [0, 0, 0], "P6\n1 1\n65535\n")), /maxval/);
    assert.throws(() => parsePpm(ppm(4, 4, () => [0, 0, 0]).subarray(0, 20)), /truncated/);
    assert.throws(() => parsePpm(Buffer.from("P6\n0 5\n255\n")), /size/);
  });
});

describe("scaleDown", () => {
  const image = parsePpm(ppm(4, 2, (x) => (x < 2 ? [0, 0, 0] : [200, 100, 50])));

  test("averages every source pixel an output pixel covers", () => {
    const half = scaleDown(image, 2);
    assert.deepEqual([half.width, half.height], [2, 1]);
    assert.deepEqual([...half.data], [0, 0, 0, 200, 100, 50]);
    const one = scaleDown(image, 1);
    assert.deepEqual([...one.data], [100, 50, 25]);
  });

  test("keeps the aspect ratio and never enlarges", () => {
    const screen = { width: 1024, height: 768, data: Buffer.alloc(1024 * 768 * 3) };
    const thumb = scaleDown(screen, 320);
    assert.deepEqual([thumb.width, thumb.height], [320, 240]);
    assert.equal(scaleDown(image, 100), image);
  });
});

describe("encodePng", () => {
  test("round-trips through a PNG reader, pixel for pixel", () => {
    const image = parsePpm(ppm(17, 9, (x, y) => [(x * 15) & 0xff, (y * 31) & 0xff, (x * y) & 0xff]));
    const decoded = decodePng(encodePng(image));
    assert.deepEqual([decoded.width, decoded.height], [17, 9]);
    assert.ok(decoded.data.equals(image.data));
  });
});
