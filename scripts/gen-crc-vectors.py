#!/usr/bin/env python3
"""Generate CRC test vectors with the official OBS SDK, for the Swift CRC tests.

CRC-64/ECMA values come from the SDK's own `obs.util.Crc64` (the class esdk-obs-python 3.26.6
uses for `x-obs-checksum-crc64ecma`), multipart object values from its `calc_obj_crc_from_parts`
(a combine of part values, no pass over the data). CRC-32C values come from crcmod's predefined
`crc-32c` (crcmod is installed with the SDK). Writes one vector a line to
Tests/OBSHashingTests/Fixtures/crc-sdk.txt:

  whole ALGORITHM SEED LENGTH VALUE
  parts ALGORITHM SEED LENGTH SIZE,SIZE,... VALUE,VALUE,... OBJECT-VALUE

ALGORITHM is crc64ecma or crc32c; the data is `pseudo_random(SEED, LENGTH)` below (the Swift test
makes the same bytes); values are decimal, as OBS sends them.

Run with the project's venv (scripts/setup installs the SDK):
    .venv/bin/python scripts/gen-crc-vectors.py
"""
import os

import crcmod.predefined
from obs import util

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "OBSHashingTests", "Fixtures", "crc-sdk.txt")


def pseudo_random(seed, length):
    """A 31-bit LCG; each byte is bits 16..23 of the next state."""
    state = seed
    out = bytearray(length)
    for i in range(length):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (state >> 16) & 0xFF
    return bytes(out)


def crc64(data):
    crc = util.Crc64()
    crc.update(data)
    return crc.crc


crc32c = crcmod.predefined.mkCrcFun("crc-32c")


class Part:
    """What calc_obj_crc_from_parts reads of a part."""

    def __init__(self, number, size, crc):
        self.partNum, self.size, self.crc64 = number, size, str(crc)


def main():
    lines = []
    for seed, length in [(1, 0), (2, 1), (3, 7), (4, 64), (5, 1000), (6, 4096), (7, 65539), (8, 1 << 20)]:
        data = pseudo_random(seed, length)
        lines.append(f"whole crc64ecma {seed} {length} {crc64(data)}")
        lines.append(f"whole crc32c {seed} {length} {crc32c(data)}")
    for seed, sizes in [(11, [5, 9]), (12, [100 * 1024, 100 * 1024, 3]), (13, [1 << 20, 1 << 19, 1, 77777]), (14, [1])]:
        data = pseudo_random(seed, sum(sizes))
        parts, values, offset = [], [], 0
        for number, size in enumerate(sizes, start=1):
            value = crc64(data[offset:offset + size])
            parts.append(Part(number, size, value))
            values.append(value)
            offset += size
        combined = util.calc_obj_crc_from_parts(parts)
        assert combined == crc64(data), "the SDK's combine disagrees with its own pass over the data"
        lines.append(f"parts crc64ecma {seed} {sum(sizes)} {','.join(map(str, sizes))} {','.join(map(str, values))} {combined}")
        values, offset = [], 0
        for size in sizes:
            values.append(crc32c(data[offset:offset + size]))
            offset += size
        lines.append(f"parts crc32c {seed} {sum(sizes)} {','.join(map(str, sizes))} {','.join(map(str, values))} {crc32c(data)}")
    with open(OUT, "w") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
