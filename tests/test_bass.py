"""Beneath a Steel Sky's speech: RNC-packed files found by number, Huffman-coded subtitles decoded, the
game's Huffman tree picked out of a binary by the English it gives. Inputs are built here, small, in the
game's layouts (an RNC method 1 packer and a text encoder written from the format)."""
import struct

import numpy as np
import pytest

from voxprompt.models.bass import (HEADER, SECTION_FIRST_FILE, SPEECH_BASE, TEXT_FILE_BASE, RncError, SkyDisk,
                                   best_tree, candidate_trees, decode_text, rnc_unpack, speech_audio,
                                   crc16, voiced_lines)


# -- an RNC method 1 packer (literal runs and back-references, 4-bit codes) --------------------------
class _BitWriter:
    """Bits fill 16-bit little-endian word slots least significant bit first; a new slot is taken at the
    end of the stream when the last is full, and literal bytes go at the end of the stream as they come."""

    def __init__(self):
        self.out, self.slot, self.used = bytearray(2), 0, 0

    def bit(self, value: int) -> None:
        if self.used == 16:
            self.slot, self.used = len(self.out), 0
            self.out += b"\0\0"
        if value:
            word = struct.unpack_from("<H", self.out, self.slot)[0] | (1 << self.used)
            struct.pack_into("<H", self.out, self.slot, word)
        self.used += 1

    def bits(self, value: int, n: int) -> None:
        for i in range(n):
            self.bit((value >> i) & 1)

    def table(self, symbols: int) -> None:  # every symbol a 4-bit code: symbol i is code i
        self.bits(symbols, 5)
        for _ in range(symbols):
            self.bits(4, 4)

    def value(self, v: int) -> None:
        symbol = v if v < 2 else v.bit_length()
        for i in range(3, -1, -1):  # the canonical code, first bit first
            self.bit((symbol >> i) & 1)
        if symbol >= 2:
            self.bits(v - (1 << (symbol - 1)), symbol - 1)


def rnc_pack(steps: list[tuple[bytes, tuple[int, int] | None]]) -> tuple[bytes, bytes]:
    """Steps of (literal bytes, (distance, length) or None for the last); the packed stream and what it unpacks to."""
    w, out = _BitWriter(), bytearray()
    w.bits(0, 2)
    for _ in range(3):
        w.table(16)
    w.bits(len(steps), 16)
    for literal, match in steps:
        w.value(len(literal))
        w.out += literal
        out += literal
        if match:
            distance, length = match
            w.value(distance - 1)
            w.value(length - 2)
            for _ in range(length):
                out.append(out[-distance])
    body = bytes(w.out)
    header = b"RNC\x01" + struct.pack(">IIHH", len(out), len(body), crc16(bytes(out)), crc16(body)) + b"\0\x01"
    return header + body, bytes(out)


def test_rnc_checks_with_crc_16_arc():
    assert crc16(b"123456789") == 0xBB3D  # the catalogued check value of CRC-16/ARC


def test_rnc_method_1_gives_back_literal_runs_and_overlapping_back_references():
    steps = [(b"ab", (2, 6)), (b"", (1, 3)), (bytes(range(40)), (40, 40)), (b"xyz", None)]
    packed, expected = rnc_pack(steps)
    assert expected.startswith(b"abababab") and len(expected) == 2 + 6 + 3 + 80 + 3
    assert rnc_unpack(packed) == expected


def test_a_damaged_rnc_stream_is_refused_not_unpacked_into_garbage():
    packed, _ = rnc_pack([(b"hello world", (6, 5)), (b"!", None)])
    damaged = packed[:-1] + bytes([packed[-1] ^ 0x10])
    with pytest.raises(RncError, match="CRC"):
        rnc_unpack(damaged)
    with pytest.raises(RncError, match="not an RNC"):
        rnc_unpack(b"RIFF" + packed[4:])


# -- the disk -----------------------------------------------------------------------------------------
def file_header(flag: int = 0, total: int = 0) -> bytes:
    return struct.pack("<11H", flag, 0, 0, 0, 0, 0, total & 0xFFFF, 0, 0, 0, 0)


def sky_disk(files: dict[int, tuple[bytes, bool]]) -> tuple[bytes, bytes]:
    """sky.dnr / sky.dsk for {number: (content, packed)}: a packed file is a header and an RNC stream, a plain
    one is stored as it is (the text sections have no header); offsets stored in 16-byte units."""
    dnr, dsk = bytearray(struct.pack("<I", len(files))), bytearray()
    for number, (content, packed) in files.items():
        dsk += b"\0" * (-len(dsk) % 16)
        if packed:
            stream, unpacked = rnc_pack([(content, None)])
            data = file_header(flag=0x80, total=HEADER + len(unpacked)) + stream
        else:
            data = content
        offset = (len(dsk) >> 4) | 0x800000
        flags = len(data) | (0 if packed else 1 << 23)
        dnr += struct.pack("<H", number) + offset.to_bytes(3, "little") + flags.to_bytes(3, "little")
        dsk += data
    return bytes(dnr), bytes(dsk)


def test_disk_files_are_found_by_number_and_unpacked_with_their_header():
    samples = bytes([128, 255, 0, 128] * 50)
    dnr, dsk = sky_disk({SPEECH_BASE + 7: (samples, True), 60600: (b"plain text file", False)})
    disk = SkyDisk(dnr, dsk)
    assert SPEECH_BASE + 7 in disk and SPEECH_BASE + 8 not in disk
    assert disk.read(60600) == b"plain text file"
    speech = disk.read(SPEECH_BASE + 7)
    assert len(speech) == HEADER + len(samples)
    audio = speech_audio(speech)
    np.testing.assert_allclose(audio[:4], [0.0, 127 / 128, -1.0, 0.0])


# -- the subtitles --------------------------------------------------------------------------------------
def huffman(chars: str) -> list[tuple[int, int, int]]:
    """A tree in the game's node layout: node 0 the root, children after their parent, leaves (0, 0, c)."""
    tree: list[list[int]] = []

    def build(symbols: list[int]) -> int:
        index = len(tree)
        tree.append([0, 0, 0])
        if len(symbols) == 1:
            tree[index][2] = symbols[0]
        else:
            half = len(symbols) // 2
            tree[index][0] = build(symbols[:half])
            tree[index][1] = build(symbols[half:])
        return index

    build([0] + [ord(c) for c in chars])
    return [tuple(node) for node in tree]


def codes(tree) -> dict[int, str]:
    found = {}

    def walk(node: int, path: str) -> None:
        left, right, char = tree[node]
        if not left and not right:
            found[char] = path
        else:
            walk(left, path + "0")
            walk(right, path + "1")

    walk(0, "")
    return found


def text_section(lines: list[str], tree) -> bytes:
    """A text section: [skip table offset][text offset][per-32-lines sizes][per-line sizes][bits], sizes in
    2-bit units, each line's bits (its characters, then a 0) from the most significant bit, padded to 2 bits."""
    table = codes(tree)
    encoded = []
    for line in lines:
        bits = "".join(table[ord(c)] for c in line) + table[0]
        encoded.append(bits + "0" * (len(bits) % 2))
    units = [len(bits) // 2 for bits in encoded]
    assert max(units) < 128
    blocks = [sum(units[k: k + 32]) for k in range(0, len(units), 32)]
    skip_at = 4 + 2 * len(blocks)
    text_at = skip_at + len(units)
    stream = "".join(encoded)
    stream += "0" * (-len(stream) % 8)
    body = bytes(int(stream[i: i + 8], 2) for i in range(0, len(stream), 8))
    return struct.pack("<HH", skip_at, text_at) + struct.pack(f"<{len(blocks)}H", *blocks) + bytes(units) + body


ENGLISH = "abcdefghijklmnopqrstuvwxyzDINW ,.'?!"
SENTENCES = ["I had to inspect it.", "What was it like before?", "Do I have to strip off?", "Never mind.",
             "It is the call button for an apartment.", "you do that, son."] * 7  # 42 lines: two blocks


def test_each_subtitle_line_decodes_from_its_own_bit_offset_in_either_block():
    tree = huffman(ENGLISH)
    section = text_section(SENTENCES, tree)
    for number in (0, 1, 5, 31, 32, 33, 41):
        assert decode_text(section, number, tree) == SENTENCES[number]


def test_the_games_tree_is_the_one_under_which_the_text_reads_as_english():
    right = huffman(ENGLISH)
    wrong = huffman(ENGLISH[::-1])  # same shape, the characters swapped round: garbles the text
    section = text_section(SENTENCES, right)
    junk = bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8))
    blob = junk + bytes(v for node in wrong for v in node) + junk + bytes(v for node in right for v in node) + junk
    trees = candidate_trees(blob)
    assert right in trees and wrong in trees
    assert best_tree(trees, section, probe=range(len(SENTENCES))) == right
    with pytest.raises(ValueError, match="no Huffman tree"):
        best_tree([wrong], section, probe=range(len(SENTENCES)))


def test_voiced_lines_pair_each_speech_file_with_its_sections_line():
    tree = huffman(ENGLISH)
    files = {TEXT_FILE_BASE: (text_section(SENTENCES[:4], tree), False),
             TEXT_FILE_BASE + 1: (text_section(SENTENCES[4:6], tree), False),
             SPEECH_BASE + SECTION_FIRST_FILE[0] + 2: (bytes([128] * 100), True),
             SPEECH_BASE + SECTION_FIRST_FILE[1] + 1: (bytes([128] * 100), True)}
    lines = voiced_lines(SkyDisk(*sky_disk(files)), tree)
    assert [(line.section, line.number, line.text) for line in lines] == [(0, 2, SENTENCES[2]), (1, 1, SENTENCES[5])]
    assert [line.speech_file for line in lines] == [SPEECH_BASE + 2, SPEECH_BASE + 601]


# -- the real package -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_real_game_gives_thousands_of_lines_whose_speech_says_their_text():
    from voxprompt.models.bass import BASS_PACKAGES, BassArchive
    from voxprompt.models.evaluate import wer, whisper_model, whisper_text
    from voxprompt.models.games import game_root, normalize_game_text

    archive = BassArchive(game_root(packages=BASS_PACKAGES))
    lines = archive.lines()
    assert len(lines) > 3000
    model = whisper_model("tiny.en")
    import soxr

    errors = []
    for line in lines[::700]:
        audio = soxr.resample(archive.audio(line.speech_file), 11025, 16000).astype(np.float32)
        assert 0.2 < len(audio) / 16000 < 30 and np.abs(audio).max() > 0.05
        errors.append(wer([normalize_game_text(line.text)], [whisper_text(model, audio, without_timestamps=True)]))
    assert np.mean(errors) < 0.3  # the text is what is said (a wrong pairing gives ~100 %)
