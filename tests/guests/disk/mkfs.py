#!/usr/bin/env python3
"""Builds the raw-disk guest's two images.

primary master (--master): sector 0 = boot.bin (the boot sector), then the
kernel (kernel.bin) from LBA 1, padded to KERNEL_SECTORS (boot.asm's count).

primary slave (--slave): a TTFS file system.
  sector 0, the superblock: "TTFS0001", u32 file count, u32 directory LBA,
            u32 total sectors (little-endian, at offsets 8, 12, 16);
  sector 1, the directory: 32-byte entries, name (16 bytes, zero-padded),
            u32 first LBA, u32 size in bytes, u32 FNV-1a hash of the bytes;
  then the files, each from a sector boundary; the last sector is scratch
  (the kernel writes it).
"""
import argparse
import random
import struct

KERNEL_SECTORS = 16
SLAVE_SECTORS = 64


def fnv1a(data):
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def files():
    rng = random.Random(20261206)
    return [
        ("hello.txt", b"Hello from a file on the primary slave.\r\n"),
        ("data.bin", bytes(rng.randrange(256) for _ in range(5000))),
        ("empty", b""),
    ]


def slave_image():
    entries, blobs, lba = [], [], 2
    for name, data in files():
        entries.append(struct.pack("<16sIII4x", name.encode(), lba, len(data), fnv1a(data)))
        sectors = (len(data) + 511) // 512
        blobs.append(data + b"\0" * (sectors * 512 - len(data)))
        lba += sectors
    assert lba < SLAVE_SECTORS - 1
    sb = b"TTFS0001" + struct.pack("<III", len(entries), 1, SLAVE_SECTORS)
    image = sb.ljust(512, b"\0") + b"".join(entries).ljust(512, b"\0") + b"".join(blobs)
    return image.ljust(SLAVE_SECTORS * 512, b"\0")


def master_image(boot, kernel):
    assert len(boot) == 512 and boot[510:] == b"\x55\xaa"
    assert len(kernel) <= KERNEL_SECTORS * 512, "the kernel outgrew boot.asm's KERNEL_SECTORS"
    return boot + kernel.ljust(KERNEL_SECTORS * 512, b"\0")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--boot", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--master", required=True)
    ap.add_argument("--slave", required=True)
    a = ap.parse_args()
    with open(a.boot, "rb") as f:
        boot = f.read()
    with open(a.kernel, "rb") as f:
        kernel = f.read()
    with open(a.master, "wb") as f:
        f.write(master_image(boot, kernel))
    with open(a.slave, "wb") as f:
        f.write(slave_image())


if __name__ == "__main__":
    main()
