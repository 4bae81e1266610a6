"""Beneath a Steel Sky (Debian main, `beneath-a-steel-sky`: the CD version 0.0372 with full speech).

    python -m voxprompt.models.bass          # fetch the package; lines, minutes, a few samples

3,491 voiced lines (116 minutes) by the game's cast, as 8-bit 11 kHz speech, with their subtitles. Training input
only (Revolution Software's licence allows free redistribution and modification and is silent on training;
the audio is never committed): the cast is not
named per line, so no character can be held out, and the unseen-voice set stays the other two games'
(models/games.py).

The data sits in `sky.dsk`, indexed by `sky.dnr` (8-byte entries: a file number, a 24-bit offset with a
"in units of 16 bytes" flag, a 24-bit size with flags); most files are packed with Rob Northen's RNC
method 1 (rnc_unpack). A speech line is file 50000 + the first file of its text section + its number in the
section, a 22-byte header then unsigned 8-bit samples. The subtitles are Huffman-coded bit streams in
files 60600-60607; the Huffman tree was never in the data files (it was compiled into the game's
executable), so it is read out of the ScummVM binary of the Debian `scummvm` package: the one tree among the
3-byte-node trees in that binary under which the text decodes as English (best_tree).
"""
from __future__ import annotations

import argparse
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxprompt.models.games import GAME_RATE, unsigned_8bit

BASS_PACKAGES = ("beneath-a-steel-sky", "scummvm")
BASS_DIR = "usr/share/scummvm/beneath-a-steel-sky"
SCUMMVM_BINARY = "usr/games/scummvm"
HEADER = 22  # a packed file, and every speech file, starts with 11 little-endian words (flags, sizes...)
SPEECH_BASE = 50000  # speech file = SPEECH_BASE + SECTION_FIRST_FILE[section] + number in the section
SECTION_FIRST_FILE = (0, 600, 1100, 2430, 3380, 4530, 5080, 5230)
TEXT_FILE_BASE = 60600  # English text, sections 0-7
SOUND_EFFECTS_FROM = 60203  # files from here on are sound effects, not speech


# -- the disk: index and RNC method 1 ----------------------------------------------------------------
class RncError(ValueError):
    pass


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16 (polynomial 0xA001, reflected), as RNC checks its packed and unpacked data."""
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


class _Bits:
    """RNC's bit stream: little-endian 16-bit words read least significant bit first, with literal bytes
    interleaved in the same stream (a literal run starts at the word the reservoir fetched last)."""

    def __init__(self, data: bytes, at: int):
        self.data = data
        self.bits, self.count, self.at = self._word(at), 16, at + 2

    def _word(self, at: int) -> int:
        return int.from_bytes(self.data[at: at + 2].ljust(2, b"\0"), "little")

    def read(self, n: int) -> int:
        if self.count - n < 16:  # keep a whole word in reserve, as the literal runs expect
            self.bits |= self._word(self.at) << self.count
            self.at += 2
            self.count += 16
        value = self.bits & ((1 << n) - 1)
        self.bits >>= n
        self.count -= n
        return value

    def literal(self, n: int) -> bytes:
        self.count -= 16  # the word in reserve is literal data, not bits
        self.bits &= (1 << self.count) - 1
        start = self.at - 2
        run = self.data[start: start + n]
        self.at = start + n
        self.bits |= self._word(self.at) << self.count
        self.at += 2
        self.count += 16
        return run

    def table(self) -> list[tuple[int, int, int]]:
        """A Huffman table: (code length, bit-reversed code, symbol), canonical codes from 4-bit lengths."""
        lengths = [self.read(4) for _ in range(self.read(5))]
        table, code = [], 0
        for length in range(1, 17):
            for symbol, own in enumerate(lengths):
                if own == length:
                    reversed_code = int(f"{code >> (16 - length):0{length}b}"[::-1], 2)
                    table.append((length, reversed_code, symbol))
                    code += 1 << (16 - length)
        return table

    def value(self, table) -> int:
        low = self.bits & 0xFFFF
        for length, code, symbol in table:
            if low & ((1 << length) - 1) == code:
                self.read(length)
                return symbol if symbol < 2 else self.read(symbol - 1) | (1 << (symbol - 1))
        raise RncError("no Huffman code matches")


def rnc_unpack(packed: bytes) -> bytes:
    """Unpack an RNC method 1 stream ("RNC\\x01", big-endian sizes and CRCs, then the blocks)."""
    if packed[:4] != b"RNC\x01":
        raise RncError("not an RNC method 1 stream")
    size, packed_size, crc_unpacked, crc_packed = struct.unpack(">IIHH", packed[4:16])
    blocks = packed[17]
    body = packed[18: 18 + packed_size]
    if len(body) != packed_size or crc16(body) != crc_packed:
        raise RncError("packed data damaged (CRC)")
    bits, out = _Bits(packed, 18), bytearray()
    bits.read(2)  # two flag bits (lock, key) before the first block
    for _ in range(blocks):
        raw, offsets, lengths = bits.table(), bits.table(), bits.table()
        counts = bits.read(16)
        for i in range(counts):
            n = bits.value(raw)
            if n:
                out += bits.literal(n)
            if i < counts - 1:  # a block's last step has literals only
                distance = bits.value(offsets) + 1
                length = bits.value(lengths) + 2
                for _ in range(length):  # may overlap itself: byte by byte
                    out.append(out[-distance])
    if len(out) != size or crc16(bytes(out)) != crc_unpacked:
        raise RncError("unpacked data damaged (size or CRC)")
    return bytes(out)


class SkyDisk:
    """The files of `sky.dsk` by number, as the game reads them (unpacked, header kept)."""

    def __init__(self, dnr: bytes, dsk: bytes):
        count = struct.unpack("<I", dnr[:4])[0]
        self.dsk, self.entries = dsk, {}
        for i in range(count):
            entry = dnr[4 + 8 * i: 12 + 8 * i]
            number = struct.unpack("<H", entry[:2])[0]
            offset = int.from_bytes(entry[2:5], "little")
            flags = int.from_bytes(entry[5:8], "little")
            if offset & 0x800000:
                offset = (offset & 0x7FFFFF) << 4
            self.entries[number] = (offset, flags & 0x3FFFFF, flags)

    def __contains__(self, number: int) -> bool:
        return number in self.entries

    def read(self, number: int) -> bytes:
        offset, size, flags = self.entries[number]
        data = self.dsk[offset: offset + size]
        packed = not (flags >> 23) & 1 and (struct.unpack("<H", data[:2])[0] >> 7) & 1
        if not packed:
            return data
        unpacked = rnc_unpack(data[HEADER:])
        return unpacked if (flags >> 22) & 1 else data[:HEADER] + unpacked


def speech_audio(file: bytes) -> np.ndarray:
    """A speech file's samples (unsigned 8-bit after the header) as float32 in [-1, 1)."""
    return unsigned_8bit(file[HEADER:])


# -- the subtitles: Huffman-coded text ----------------------------------------------------------------
Tree = list[tuple[int, int, int]]  # (left child, right child, character); a leaf has no children


def decode_text(section: bytes, number: int, tree: Tree, limit: int = 400) -> str:
    """Line `number` (0-4095) of a text section file: its bit offset is the sum of a per-32-lines block
    table and per-line skip bytes; characters follow the tree from the root until a 0 character."""
    offset = sum(struct.unpack_from("<H", section, 4 + 2 * i)[0] for i in range(number >> 5))
    skips = struct.unpack_from("<H", section, 0)[0] + (number & 0xFE0)
    for i in range(number & 0x1F):
        skip = section[skips + i]
        offset += (skip & 0x7F) << 3 if skip & 0x80 else skip
    at = (offset >> 2) + struct.unpack_from("<H", section, 2)[0]
    bit = ((offset & 3) ^ 3) + 1 << 1  # bits still unread in the byte at `at`; 8 means a fresh byte
    chars = []
    while len(chars) < limit:
        node = 0
        while True:
            if bit:
                bit -= 1
            else:
                at, bit = at + 1, 7
            if at >= len(section):
                raise ValueError("text runs past its section")
            left, right, _ = tree[node]
            node = right if (section[at] >> bit) & 1 else left
            if node >= len(tree):
                raise ValueError("not this tree")
            if not tree[node][0] and not tree[node][1]:
                break
        char = tree[node][2]
        if char == 0:
            return "".join(chars)
        chars.append(chr(char))
    raise ValueError("no end of text")


def candidate_trees(blob: bytes) -> list[Tree]:
    """Every well-formed tree of 3-byte nodes in `blob`: the root's children are nodes 1 and k, each inner
    node's children come after it, leaves are (0, 0, character), 60-255 nodes."""
    data = np.frombuffer(blob, np.uint8)
    starts = np.flatnonzero((data[:-9] == 1) & (data[2:-7] == 0) & (data[3:-6] == 2) & (data[5:-4] == 0))
    trees = []
    for start in starts:
        tree: Tree = []
        leaves = inner = 0
        for i in range(256):
            at = int(start) + 3 * i
            if at + 3 > len(blob):
                break
            left, right, char = blob[at], blob[at + 1], blob[at + 2]
            if left == 0 and right == 0:
                leaves += 1
            elif left > i and right > left and char == 0:
                inner += 1
            else:
                break
            tree.append((left, right, char))
            if leaves == inner + 1:  # a full binary tree is complete
                break
        if leaves == inner + 1 and len(tree) >= 60 and all(r < len(tree) for _, r, _ in tree):
            trees.append(tree)
    return trees


COMMON_WORDS = frozenset("the a to you i it is of and that what this in me my be have do not can".split())


def best_tree(trees: list[Tree], section: bytes, probe: range = range(1, 400)) -> Tree:
    """Of the candidate trees, the one under which a text section's lines read as English: the most
    common English words, then the fewest characters outside printable ASCII (older versions' trees
    garble the letters, near relatives only the rare characters)."""

    def score(tree: Tree) -> tuple[int, int]:
        common = odd = 0
        for n in probe:
            try:
                line = decode_text(section, n, tree)
            except (ValueError, IndexError, struct.error):
                continue
            common += sum(word.strip(".,!?").lower() in COMMON_WORDS for word in line.split())
            odd += sum(not (c.isascii() and c.isprintable()) for c in line)
        return common, -odd

    scores = [score(tree) for tree in trees]
    if not scores or max(scores)[0] < len(probe) // 2:
        raise ValueError("no Huffman tree in the ScummVM binary decodes the game's text as English")
    return trees[scores.index(max(scores))]


# -- the voiced lines --------------------------------------------------------------------------------
@dataclass(frozen=True)
class BassLine:
    """One voiced subtitle line: text number (section << 12 | number) and its speech file."""

    section: int
    number: int
    text: str  # as the game shows it (emphasis capitals)

    @property
    def speech_file(self) -> int:
        return speech_file(self.section, self.number)


def speech_file(section: int, number: int) -> int:
    return SPEECH_BASE + SECTION_FIRST_FILE[section] + number


def voiced_lines(disk: SkyDisk, tree: Tree, max_lines: int = 1400) -> list[BassLine]:
    """Every text line that has a speech file."""
    lines = []
    for section in range(len(SECTION_FIRST_FILE)):
        text_file = TEXT_FILE_BASE + section
        if text_file not in disk:
            continue
        texts = disk.read(text_file)
        for number in range(max_lines):
            file = speech_file(section, number)
            if file not in disk or file >= SOUND_EFFECTS_FROM:
                continue
            try:
                lines.append(BassLine(section, number, decode_text(texts, number, tree)))
            except (ValueError, IndexError, struct.error):
                continue  # a speech file past the section's text
    return lines


class BassArchive:
    """The game's voiced lines and their audio, read from the unpacked packages under `root`."""

    def __init__(self, root: Path):
        directory = Path(root) / BASS_DIR
        with open(directory / "sky.dsk", "rb") as dsk:  # 72 MB, of which a shard reads a few files: mapped
            data = mmap.mmap(dsk.fileno(), 0, access=mmap.ACCESS_READ)
        self.disk = SkyDisk((directory / "sky.dnr").read_bytes(), data)
        self.root = Path(root)

    def lines(self) -> list[BassLine]:
        binary = (self.root / SCUMMVM_BINARY).read_bytes()
        tree = best_tree(candidate_trees(binary), self.disk.read(TEXT_FILE_BASE))
        return voiced_lines(self.disk, tree)

    def audio(self, speech_file: int) -> np.ndarray:
        """A line's speech at its own rate (GAME_RATE), float32."""
        return speech_audio(self.disk.read(speech_file))


def main() -> None:
    from voxprompt.models.games import Dictionary, game_root, normalize_game_text

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    archive = BassArchive(game_root(packages=BASS_PACKAGES))
    lines = archive.lines()
    seconds = sum(len(archive.audio(line.speech_file)) for line in lines) / GAME_RATE
    print(f"{len(lines)} voiced lines, {seconds / 60:.0f} minutes of speech")
    proper_nouns = Dictionary.load().proper_nouns
    for line in lines[:: max(1, len(lines) // 8)]:
        print(f"  {line.speech_file}: {normalize_game_text(line.text, proper_nouns)}")


if __name__ == "__main__":
    main()
