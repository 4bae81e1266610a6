"""The game speech corpus: every voiced line found with its text, text as a person writes it,
whole characters held out. Resource files are built here, small, in the games' documented layouts."""
import struct

import numpy as np
import pytest

from voxprompt.models.games import (GAME_DEV_CHARACTERS, Dictionary, GameLine, QueenObjects, QueenResources,
                                    cap_share, cutaway_lines, cutaway_speakers, dictionary_share, drascula_audio,
                                    drascula_lines, drascula_texts, game_splits, normalize_game_text, queen_lines,
                                    speech_segments)


# -- builders for the games' formats ----------------------------------------------------------------
def pstring(text: str, at: int, align: int = 2) -> bytes:
    """u8 length + bytes, then zeros up to `align` (counted in the bank's data, `at` is where it starts)."""
    raw = bytes([len(text)]) + text.encode("latin-1")
    end = at + len(raw)
    return raw + b"\0" * ((-end) % align if text else 0)


def dialogue_bank(talk_key: int, opening: str, joe: list[tuple[int, str]], person: list[tuple[int, str]],
                  again: tuple[str, str]) -> bytes:
    """A .DOG file: header, a one-level tree, Joe's list (first entry id 0: his opening line), the person's."""
    level_max = 1
    joe_ptr = 32 + level_max * 96
    body = bytearray(joe_ptr)
    entries = [(0, opening)] + joe
    for ident, text in entries:
        body += b"\0\0" + struct.pack(">h", ident)
        body += pstring(text, len(body), 4)
    person1 = len(body)
    for ident, text in person:
        body += b"\0\0" + struct.pack(">h", ident)
        body += pstring(text, len(body), 4)
    person2 = len(body)
    for text in again:
        body += pstring(text, len(body))
    struct.pack_into(">hhhhh", body, 0, level_max, 7, talk_key, len(entries), len(person))
    struct.pack_into(">HHH", body, 22, person1, 0, person2)
    return b"AmBk" + b"\0" * 16 + bytes(body)


def cutaway_bank(sentences: list[str]) -> bytes:
    body = bytearray(10)
    struct.pack_into(">hhhHH", body, 0, 0, len(sentences), 0, 0, 10)
    body += pstring("NEXTCUT", len(body))
    for text in sentences:
        body += pstring(text, len(body))
    return b"AmBk" + b"\0" * 16 + bytes(body)


def queen_file(files: dict[str, bytes]) -> bytes:
    header = b"QTBL" + b"CEM10\0" + b"\0\0" + bytes([1]) + struct.pack(">H", len(files))
    offset = len(header) + 21 * len(files)
    table, data = b"", b""
    for name, content in files.items():
        table += name.encode().ljust(12, b"\0") + bytes([1]) + struct.pack(">II", offset + len(data), len(content))
        data += content
    return header + table + data


# -- Flight of the Amazon Queen ---------------------------------------------------------------------
def test_a_line_with_stage_commands_is_spoken_in_numbered_segments():
    segments = speech_segments("Well, *FLlook at *XY00(237,112)that!", " 2  1eP")
    assert segments == [("02001EP1.SB", "Well,"), ("02001EP2.SB", "look at"), ("02001EP3.SB", "that!")]
    # A command with nothing before it still advances the count: the first spoken file is the second.
    assert speech_segments("*GMHere.", "JOE0041") == [("JOE00412.SB", "Here.")]


def test_dialogue_and_cutaway_lines_are_found_with_their_speech_files():
    dog = dialogue_bank(2, "Hello there.", [(0x1E, "Who are you?")], [(0x1E, "I am *FLthe *WTbaker.")],
                        ("Back again?", "Yes."))
    files = {"BAKER1.DOG": dog, "C18C.CUT": cutaway_bank(["Look out!", "*", "#credits"]),
             "02SSSSJ1.SB": b"a", "02001EJ1.SB": b"b", "02001EP1.SB": b"c", "02001EP3.SB": b"d",
             "02XXXXP1.SB": b"e", "02XXXXJ1.SB": b"f", "C18C_011.SB": b"g"}
    lines = queen_lines(QueenResources(queen_file(files)))
    got = {(line.character, line.key, line.text) for line in lines}
    assert got == {("JOE", "02SSSSJ1.SB", "Hello there."), ("JOE", "02001EJ1.SB", "Who are you?"),
                   ("BAKER", "02001EP1.SB", "I am"), ("BAKER", "02001EP3.SB", "baker."),
                   ("BAKER", "02XXXXP1.SB", "Back again?"), ("JOE", "02XXXXJ1.SB", "Yes."),
                   ("CUTAWAY", "C18C_011.SB", "Look out!")}
    assert QueenResources(queen_file(files)).read("02001EP3.SB") == b"d"


def test_a_file_that_is_not_the_resource_file_is_refused():
    with pytest.raises(ValueError, match="QTBL"):
        QueenResources(b"RIFF" + b"\0" * 40)


# -- Drascula -----------------------------------------------------------------------------------------
def drascula_dat(tables: dict[str, list[str]]) -> bytes:
    """Two languages; each table's entry holds its strings with u16 skips between them."""
    out = b"DRASCULA\x06" + b"\0" * 30 + struct.pack(">H", 2)
    for name in ("text", "textd", "textb", "textbj", "texte", "texti", "textl", "textp", "textt", "textvb"):
        strings = tables.get(name, [""])
        # String 0 at byte 0, string 1 at byte 8; the u16 just before string i's start (4 for
        # string 0) says how far on string i + 1 starts.
        entry = bytearray(strings[0].encode() + b"\0").ljust(4, b"\0")
        starts = [4]
        for text in strings[1:]:
            start = max(8, len(entry) + 2 + len(entry) % 2)
            entry = entry.ljust(start, b"\0") + text.encode() + b"\0"
            struct.pack_into(">H", entry, starts[-1] - 2, start - starts[-1])
            starts.append(start)
        out += struct.pack(">H", len(strings))
        for language in range(2):
            data = bytes(entry) if language == 0 else b"\0" * 8
            out += struct.pack(">H", len(data)) + data
    return out


def test_drascula_speech_files_are_paired_with_their_table_strings():
    tables = {"text": ["", "THAT'S THE SECOND BIGGEST DOOR I'VE SEEN", "NOT REALLY"],
              "textbj": ["", "HELLO, I'M B.J."], "textvb": ["", "GO AWAY", "WHO IS IT?"]}
    texts = drascula_texts(drascula_dat(tables))
    assert texts["text"][2] == "NOT REALLY" and texts["textvb"][2] == "WHO IS IT?"
    lines = drascula_lines(["1.ALS", "2.ALS", "BJ1.ALS", "VB2.ALS", "S3.ALS", "F1.ALS", "7.ALS"], texts)
    assert {(line.character, line.key, line.text) for line in lines} == {
        ("JOHN", "1.ALS", "THAT'S THE SECOND BIGGEST DOOR I'VE SEEN"), ("JOHN", "2.ALS", "NOT REALLY"),
        ("BJ", "BJ1.ALS", "HELLO, I'M B.J."), ("VB", "VB2.ALS", "WHO IS IT?")}


def test_drascula_audio_is_centred_eight_bit_after_its_header():
    raw = bytes(32) + bytes([128, 255, 0, 128])
    assert np.allclose(drascula_audio(raw), [0.0, 127 / 128, -1.0, 0.0])


# -- text -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, written", [
    ("IT'S A SHAME THERE ISN'T A LAMB IN THERE", "It's a shame there isn't a lamb in there"),
    ("HEY IGOR, HOW IS IT GOING?!!", "Hey Igor, how is it going?"),
    ("I'VE FOUND B.J.'S HANDBAG!", "I've found B.J.'s handbag!"),
    ('I\'ll take that as a "NO".', "I'll take that as a no."),
    ("Well... I WENT home...", "Well, I went home."),
    ("...and OK, fine", "And OK, fine"),
])
def test_subtitles_become_text_as_a_person_writes_it(raw, written):
    assert normalize_game_text(raw, frozenset({"igor"})) == written


def test_gibberish_scores_below_real_sentences():
    words = frozenset("i saw the dog in garden go".split())
    assert dictionary_share("I saw the dog in the garden.", words) == 1.0
    assert dictionary_share("Unga chunga, whoop!", words) < 0.5


def test_the_hero_is_capped_and_others_are_kept():
    lines = [GameLine("fotaq", "JOE", f"J{i}", "x") for i in range(80)]
    lines += [GameLine("fotaq", "BOB", f"B{i}", "x") for i in range(30)]
    kept = cap_share(lines, "fotaq:JOE", 0.25)
    joe = sum(line.character == "JOE" for line in kept)
    assert sum(line.character == "BOB" for line in kept) == 30
    assert joe == 10  # 10 / 40 = 25 %
    assert cap_share(lines, "fotaq:JOE", 0.25) == kept  # the same subset every time


def test_a_cutaway_sentence_is_spoken_by_the_person_of_its_object_record():
    # logic tables: object 1 a person named "Trader Bob" (image -3), object 2 a plain animated thing (image 5)
    jas = b"AmBk" + b"\0" * 16 + struct.pack(">4H", 1, 2, 2, 1) + struct.pack(">8h", 2, 0, 0, 0, 0, 1, 0, -3) \
        + struct.pack(">8h", 1, 0, 0, 0, 0, 1, 0, 5)
    jas2 = "a description\r\na crate\r\nTrader Bob\r\n".encode("latin-1")
    objects = QueenObjects.read(jas, jas2)

    def record(number, anim_list=0, execute=0, people=()):
        fields = [0] * 17
        fields[0], fields[4], fields[5] = number, anim_list, execute
        return struct.pack(">17h", *fields) + struct.pack(">h", len(people)) + struct.pack(f">{len(people)}h", *people)

    frames = struct.pack(">10h", 2, 1, 1, 0, 0, 0, 0, 0, 100, 0) * 2 + struct.pack(">h", -2)
    records = record(0) + record(2, anim_list=1, execute=1, people=(1,)) + frames + record(1) + record(-2)
    body = bytearray(12) + records
    sentences_at = len(body)
    struct.pack_into(">hhhHHH", body, 0, 0, 4, 0, 0, sentences_at, 0)
    body += pstring("", len(body))  # the next cutaway: none
    for text in ("I'm Joe.", "*", "Hello, Joe.", "Meanwhile..."):
        body += pstring(text, len(body))
    bank = b"AmBk" + b"\0" * 16 + bytes(body)
    assert cutaway_speakers(bank, objects) == ["Joe King", None, "Trader Bob", None]
    assert cutaway_lines("C1.CUT", bank, objects) == [("CUTAWAY:JOE", "C1___01", "I'm Joe."),
                                                       ("CUTAWAY:BOB", "C1___03", "Hello, Joe."),
                                                       ("CUTAWAY", "C1___04", "Meanwhile...")]


def test_named_cutaway_speakers_train_only_when_asked_and_never_a_held_out_character():
    dictionary = Dictionary(frozenset("where is the door".split()), frozenset())
    dev_game, dev_character = next(iter(sorted(GAME_DEV_CHARACTERS))).split(":")
    lines = [GameLine("fotaq", "CUTAWAY:BOB", "C1", "Where is the door?"),
             GameLine(dev_game, f"CUTAWAY:{dev_character}", "C2", "Where is the door?"),
             GameLine("fotaq", "CUTAWAY", "C3", "Where is the door?")]
    assert game_splits(lines, dictionary).train == []
    splits = game_splits(lines, dictionary, hero_share=0.5, cutaways=True)
    assert [(line.key, line.character) for line in splits.train] == [("C1", "BOB")] and splits.dev == []
    assert splits.dropped["cutaway (held-out character)"] == 1 and splits.dropped["cutaway (speaker unknown)"] == 1


def test_held_out_characters_never_reach_training_and_unknown_speakers_are_left_out():
    dictionary = Dictionary(frozenset("where is the door it was here".split()), frozenset())
    dev_game, dev_character = next(iter(sorted(GAME_DEV_CHARACTERS))).split(":")
    lines = [GameLine("fotaq", "BOB", "B1", "Where is the door?"),
             GameLine(dev_game, dev_character, "D1", "It was here."),
             GameLine("fotaq", "CUTAWAY", "C1", "Where is the door?"),
             GameLine("fotaq", "BOB", "B2", "Unga chunga whoop!")]
    splits = game_splits(lines, dictionary, hero_share=0.5)
    assert [line.key for line in splits.train] == ["B1"]
    assert [line.key for line in splits.dev] == ["D1"]
    assert splits.dropped["gibberish"] == 1 and splits.dropped["cutaway (speaker unknown)"] == 1


# -- the real packages ------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_real_games_give_hours_of_speech_by_many_characters(tmp_path):
    from voxprompt.models.games import GameArchive, game_root

    archive = GameArchive(game_root())
    lines = archive.lines()
    splits = game_splits(lines, Dictionary.load())
    assert len(lines) > 7000
    assert len({line.speaker for line in splits.train}) >= 20
    assert {line.speaker for line in splits.dev} == GAME_DEV_CHARACTERS
    # the cutaway scenes' records name most of their speakers: more training lines, the same development set
    with_cutaways = game_splits(lines, Dictionary.load(), cutaways=True)
    assert len(with_cutaways.train) > len(splits.train) + 500 and with_cutaways.dev == splits.dev
    assert with_cutaways.dropped["cutaway (speaker unknown)"] < splits.dropped["cutaway (speaker unknown)"] / 4
    for line in splits.dev[::150]:
        audio = archive.audio(line)
        assert np.isfinite(audio).all() and 0.2 < len(audio) / 16000 < 30
        assert np.abs(audio).max() > 0.05  # speech, not silence


@pytest.mark.slow
def test_game_mp3s_load_as_exactly_the_samples_they_decode_to(tmp_path):
    """libsndfile's frame count for these MP3s is an estimate above what decodes: reading by it returned
    the unwritten rest of a buffer (garbage, NaN on 1 file in 100)."""
    import soundfile as sf

    from voxprompt.audio import load_audio
    from voxprompt.models.games import GameArchive, game_root

    archive = GameArchive(game_root())
    lines = [line for line in archive.lines() if line.game == "fotaq"][:200:4]
    for i, line in enumerate(lines):
        path = tmp_path / f"{i}.mp3"
        path.write_bytes(archive.queen.read(line.key))
        decoded, rate = sf.read(path, dtype="float32")  # trimmed to what libmpg123 gave
        audio = load_audio(path)
        assert np.isfinite(audio).all()
        assert abs(len(audio) - len(decoded) * 16000 / rate) <= 2
