"""Real multi-speaker English speech from two voiced adventure games in Debian main.

    python -m voxprompt.models.games          # fetch the packages; lines per split and character

Flight of the Amazon Queen (`flight-of-the-amazon-queen`: one resource file, `queen.1c`, holding MP3
speech and the subtitle text) and Drascula (`drascula`: raw 8-bit speech files; its text sits in
`scummvm-data`'s `drascula.dat`). The packages are fetched with `apt-get download` and unpacked with
`dpkg-deb -x` into the cache (no install, no root); the audio is training and evaluation input only and
is never committed. Each clip is one subtitle line by one character, so whole characters can be held
out: `GAME_DEV_CHARACTERS` are never trained on.
"""
from __future__ import annotations

import argparse
import re
import struct
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

GAME_PACKAGES = ("flight-of-the-amazon-queen", "drascula", "scummvm-data")
QUEEN_FILE = "usr/share/scummvm/flight-of-the-amazon-queen/queen.1c"
DRASCULA_SPEECH = "usr/share/scummvm/drascula/en"
DRASCULA_TEXT = "usr/share/scummvm/drascula.dat"
GAME_RATE = 11025  # both games' speech: nothing above 5.5 kHz

# Characters never trained on: the unseen-voice development set (women among them: Faye, Naomi,
# Tammy, the Princess; Drascula's B.J.). Joe and Drascula's hero are the bulk of training.
GAME_DEV_CHARACTERS = frozenset({"fotaq:FAYE", "fotaq:NAOMI", "fotaq:TAM", "fotaq:PRIN", "fotaq:IAN",
                                 "fotaq:KLUNK", "fotaq:ORACLE", "drascula:BJ", "drascula:B", "drascula:VB"})
HERO_SHARE = 0.25  # Joe speaks 35-40 % of FOTAQ: capped so one voice does not dominate


@dataclass(frozen=True)
class GameLine:
    """One voiced subtitle line."""

    game: str  # "fotaq" | "drascula"
    character: str  # "JOE", "FAYE", ...; a cutaway scene's "CUTAWAY" or "CUTAWAY:<character>" (cutaway_lines)
    key: str  # the speech resource: "02001EJ1.SB", "BJ12.ALS"
    text: str  # as the game shows it (before normalize_game_text)

    @property
    def speaker(self) -> str:
        return f"{self.game}:{self.character}"


# -- Flight of the Amazon Queen -----------------------------------------------------------------------
BANK_HEADER = 20  # "AmBk" bank header before dialogue and cutaway data


class QueenResources:
    """The rebuilt resource file: "QTBL", version, a table of (name, bundle, offset, size)."""

    def __init__(self, data: bytes):
        if data[:4] != b"QTBL":
            raise ValueError("not a queen.1c resource file (no QTBL signature)")
        count = struct.unpack(">H", data[13:15])[0]
        self.data, self.entries = data, {}
        for i in range(count):
            entry = data[15 + 21 * i: 15 + 21 * (i + 1)]
            name = entry[:12].rstrip(b"\0").decode("ascii")
            offset, size = struct.unpack(">II", entry[13:21])
            self.entries[name] = (offset, size)

    def read(self, name: str) -> bytes:
        offset, size = self.entries[name]
        return self.data[offset: offset + size]

    def names(self, suffix: str) -> list[str]:
        return sorted(n for n in self.entries if n.endswith(suffix))


def _string(data: bytes, offset: int, align: int = 2) -> tuple[str, int]:
    """A length-prefixed string and the offset after it (padded to `align` when not empty)."""
    length = data[offset]
    offset += 1
    if not length:
        return "", offset
    text = data[offset: offset + length].decode("latin-1")
    return text, (offset + length + align - 1) & ~(align - 1)


def speech_segments(text: str, prefix: str) -> list[tuple[str, str]]:
    """(voice file, text) per spoken segment of a line. `*` + two characters is a stage command
    (`*XY` carries 11 more); every command ends a segment, and segment i plays prefix + hex(i + 1)."""
    segments, i, start, index = [], 0, 0, 0
    while i < len(text):
        if text[i] == "*":
            segments.append((index, text[start:i]))
            command = text[i + 1: i + 3]
            i += 3 + (11 if command == "XY" else 0)
            index, start = index + 1, i
        else:
            i += 1
    segments.append((index, text[start:]))
    name = prefix.replace(" ", "0")
    return [(f"{name}{k + 1:x}.SB".upper(), s.strip()) for k, s in segments if s.strip()]


def dialogue_lines(name: str, bank: bytes) -> list[tuple[str, str, str]]:
    """(character, voice prefix, text) for each line of a .DOG dialogue file: Joe's and the person's."""
    data = bank[BANK_HEADER:]
    i16 = lambda at: struct.unpack(">h", data[at: at + 2])[0]
    level_max, talk_key, j_max, p_max = abs(i16(0)), i16(4), i16(6), i16(8)
    person1, person2 = (struct.unpack(">H", data[at: at + 2])[0] for at in (22, 26))
    person = re.sub(r"\d+$", "", name.split(".")[0])
    joe_ptr = 32 + level_max * 96
    lines = []

    def listing(offset: int, count: int, who: str, tag: str) -> None:
        for _ in range(count):
            ident = i16(offset + 2)
            text, offset = _string(data, offset + 4, 4)
            if text:
                lines.append((who, f"{talk_key:2d}{ident & 0xFFFF:4x}{tag}", text))

    listing(joe_ptr, j_max, "JOE", "J")
    listing(person1, p_max, person, "P")
    if not struct.unpack(">H", data[joe_ptr + 2: joe_ptr + 4])[0]:  # Joe's opening line
        text, _ = _string(data, joe_ptr + 4)
        lines.append(("JOE", f"{talk_key:2d}SSSSJ", text))
    text, offset = _string(data, person2)  # what each says on meeting again
    lines.append((person, f"{talk_key:2d}XXXXP", text))
    text, _ = _string(data, offset)
    lines.append(("JOE", f"{talk_key:2d}XXXXJ", text))
    return [line for line in lines if line[2]]


# A cutaway's person object, by its name in the logic tables -> the dialogue character it is. Only names that
# are plainly one dialogue character are here; the others (a guard, "tall pygmy") stay unattributed.
CUTAWAY_NAMES = {"Joe King": "JOE", "Anderson": "AND", "Bud": "BUD", "Faye": "FAYE", "Frank": "FRANK",
                 "Henry": "HENRY", "Ian": "IAN", "Jimmy": "JIM", "John": "JOHN", "Klunk": "KLUNK", "Lola": "LOLA",
                 "Mary-Lou": "LOU", "Naomi": "NAOMI", "Princess Azura": "PRIN", "azura obj": "PRIN",
                 "Sparky": "SPARKY", "Trader Bob": "BOB", "Wedgewood": "WEDGE", "chef": "CHEF", "chief": "CHIEF",
                 "secretary": "SEC", "witch doctor": "WITCH", "zombie woman": "ZOMBIE", "showering Amazon": "SHOWERAM"}


@dataclass(frozen=True)
class QueenObjects:
    """The logic tables' objects (QUEEN.JAS, names from QUEEN2.JAS): each one's name and image (-3 or -4:
    a person). Index = object number; 0 is unused."""

    names: list[str]
    images: list[int]

    @classmethod
    def read(cls, jas: bytes, jas2: bytes) -> "QueenObjects":
        data = jas[BANK_HEADER:]
        _rooms, _names, count, descriptions = struct.unpack(">4H", data[:8])
        records = [struct.unpack(">8h", data[8 + 16 * i: 24 + 16 * i]) for i in range(count)]
        rows = jas2.decode("latin-1").split("\r\n")
        names = [rows[descriptions + abs(r[0]) - 1] if r[0] and descriptions + abs(r[0]) - 1 < len(rows) else ""
                 for r in records]
        return cls([""] + names, [0] + [r[7] for r in records])

    def is_person(self, number: int) -> bool:
        return 0 < number < len(self.images) and self.images[number] in (-3, -4)


def cutaway_speakers(bank: bytes, objects: QueenObjects) -> list[str | None]:
    """Who speaks each sentence of a .CUT scene (sentence k belongs to object record k): the person's
    name in the logic tables ("Joe King" for Joe), or None (narration, an object that is not a person).
    The records are walked as ScummVM's Cutaway::run reads them: 17 int16, a list of people to show,
    and, for an animated object that runs, its frames (10 int16 each) up to a -2."""
    data = bank[BANK_HEADER:]
    count = abs(struct.unpack(">h", data[2:4])[0])
    at, speakers = 12, []
    for _ in range(count):
        record = struct.unpack(">17h", data[at: at + 34])
        number, anim_list, execute, from_object = record[0], record[4], record[5], record[12]
        people = struct.unpack(">h", data[at + 34: at + 36])[0]
        at += 36 + 2 * people
        number = 0 if number == -1 else number  # a room fade is Joe's record
        person = not anim_list and (number == 0 or objects.is_person(number))
        animated = number >= 0 and not person and not from_object > 0 and execute
        if animated:
            while struct.unpack(">h", data[at: at + 2])[0] != -2:
                at += 20
            at += 2
        if person and not from_object > 0:
            speakers.append("Joe King" if number == 0 else objects.names[number])
        else:
            speakers.append(None)
    return speakers


def cutaway_lines(name: str, bank: bytes, objects: QueenObjects | None = None) -> list[tuple[str, str, str]]:
    """(character, voice prefix, text) of a .CUT cutaway scene's sentences. The character is "CUTAWAY", or
    with `objects` "CUTAWAY:<dialogue character>" where the scene's record names one (CUTAWAY_NAMES)."""
    data = bank[BANK_HEADER:]
    count = abs(struct.unpack(">h", data[2:4])[0])
    offset = struct.unpack(">H", data[8:10])[0]
    _, offset = _string(data, offset)  # the scene's next cutaway
    base = name.split(".")[0].ljust(5, "_")
    speakers = cutaway_speakers(bank, objects) if objects is not None else [None] * count
    lines = []
    for k in range(1, count + 1):
        text, offset = _string(data, offset)
        if text and text != "*" and not text.startswith("#"):
            code = CUTAWAY_NAMES.get(speakers[k - 1] or "")
            lines.append((f"CUTAWAY:{code}" if code else "CUTAWAY", f"{base}{k:02d}", text))
    return lines


def joe_stock_lines(jas: bytes) -> list[tuple[str, str, str]]:
    """Joe's object descriptions and stock replies in QUEEN2.JAS (CRLF text, one string a line)."""
    rows = jas.decode("latin-1").split("\r\n")
    lines = [("JOE", f"JOE{40 + k:04d}", rows[k - 1]) for k in range(1, 1187) if k - 1 < len(rows)]
    lines += [("JOE", f"JOE{i:04d}", rows[1186 + i]) for i in range(1, 41) if 1186 + i < len(rows)]
    return [line for line in lines if line[2].strip()]


def queen_lines(resources: QueenResources) -> list[GameLine]:
    """Every FOTAQ subtitle segment that has its own speech file."""
    found: list[tuple[str, str, str]] = []
    for name in resources.names(".DOG"):
        found += dialogue_lines(name, resources.read(name))
    objects = None
    if "QUEEN.JAS" in resources.entries and "QUEEN2.JAS" in resources.entries:
        objects = QueenObjects.read(resources.read("QUEEN.JAS"), resources.read("QUEEN2.JAS"))
    for name in resources.names(".CUT"):
        found += cutaway_lines(name, resources.read(name), objects)
    if "QUEEN2.JAS" in resources.entries:
        found += joe_stock_lines(resources.read("QUEEN2.JAS"))
    lines, seen = [], set()
    for character, prefix, text in found:
        for key, segment in speech_segments(text, prefix):
            if key in resources.entries and key not in seen:
                seen.add(key)
                lines.append(GameLine("fotaq", character, key, segment))
    return lines


# -- Drascula ---------------------------------------------------------------------------------------
# Speech file prefix -> (text table, character). S1-S15 are effects, F1-F3 Spanish: neither is here.
DRASCULA_TABLES = {"": ("text", "JOHN"), "D": ("textd", "D"), "B": ("textb", "B"), "BJ": ("textbj", "BJ"),
                   "E": ("texte", "E"), "I": ("texti", "I"), "L": ("textl", "L"), "P": ("textp", "P"),
                   "T": ("textt", "T"), "VB": ("textvb", "VB")}
_DRASCULA_TABLE_ORDER = ("text", "textd", "textb", "textbj", "texte", "texti", "textl", "textp", "textt", "textvb")
_DRASCULA_SPEECH = re.compile(r"^(BJ|VB|[DBEILPT]|)(\d+)\.ALS$")
DRASCULA_HEADER = 32  # bytes before the 8-bit samples


def u16_at(data: bytes, at: int) -> int:
    return struct.unpack(">H", data[at: at + 2])[0]


def drascula_texts(dat: bytes) -> dict[str, list[str]]:
    """The English (language 0) text tables of drascula.dat, by name."""
    anchor = dat.find(b"THAT'S THE SECOND BIGGEST DOOR")
    if anchor < 0:
        raise ValueError("drascula.dat: the English text table was not found")
    languages, offset = u16_at(dat, anchor - 14), anchor - 12
    tables = {}
    for name in _DRASCULA_TABLE_ORDER:
        count, offset = u16_at(dat, offset), offset + 2
        entries = []
        for _ in range(languages):
            size = u16_at(dat, offset)
            entries.append(dat[offset + 2: offset + 2 + size])
            offset += 2 + size
        entry, strings, pos = entries[0], [], 4
        strings.append(entry[: entry.index(b"\0")])
        for _ in range(1, count):
            pos += u16_at(entry, pos - 2)
            strings.append(entry[pos: entry.index(b"\0", pos)])
        tables[name] = [s.decode("latin-1") for s in strings]
    return tables


def drascula_lines(speech_files: list[str], texts: dict[str, list[str]]) -> list[GameLine]:
    """A GameLine for every speech file whose text table has its string."""
    lines = []
    for name in sorted(speech_files):
        match = _DRASCULA_SPEECH.match(name)
        if not match:
            continue
        table, character = DRASCULA_TABLES[match.group(1)]
        index = int(match.group(2))
        if index < len(texts[table]) and texts[table][index].strip():
            lines.append(GameLine("drascula", character, name, texts[table][index]))
    return lines


def drascula_audio(raw: bytes) -> np.ndarray:
    """Unsigned 8-bit samples after the header, as float32 in [-1, 1) at GAME_RATE."""
    return (np.frombuffer(raw[DRASCULA_HEADER:], np.uint8).astype(np.float32) - 128.0) / 128.0


# -- text -----------------------------------------------------------------------------------------
KEEP_CAPS = frozenset({"OK", "TV", "USA", "UK", "DJ", "FBI", "CIA", "UFO", "VIP", "II", "III", "IV"})
_WORD = re.compile(r"[A-Za-z][A-Za-z'.]*")
_INITIALS = re.compile(r"^(?:[A-Za-z]\.){2,}(?:'[sS])?$")  # B.J., D.N.A.


def normalize_game_text(text: str, proper_nouns: frozenset[str] = frozenset()) -> str:
    """Subtitle text as a person would write it: emphasis capitals and all-caps lines in ordinary case
    (names found in `proper_nouns`, lower-cased, get their capital back), ellipses as a comma or a full
    stop, quotes and stray symbols dropped, spaces collapsed."""
    text = text.replace("\u2019", "'").replace('"', "").replace("`", "'")
    text = re.sub(r"[_#@^~|<>{}\[\]\\*]", " ", text)
    all_caps = not re.search(r"[a-z]", text)

    def case(match: re.Match) -> str:
        word = match.group(0)
        bare = word.rstrip(".")
        if _INITIALS.match(word):
            return word.upper().replace("'S", "'s")
        if word.upper() != word or bare in KEEP_CAPS or (len(word) == 1 and not all_caps):
            return word
        lower = word.lower()
        return lower.capitalize() if lower.rstrip("'s") in proper_nouns else lower

    text = _WORD.sub(case, text)
    text = re.sub(r"\s*\.{2,}\s*$", ".", text.strip())  # a trailing ellipsis ends the sentence
    text = re.sub(r"^\s*\.{2,}\s*", "", text)
    text = re.sub(r"\s*\.{2,}\s*(?=\S)", ", ", text)  # one inside it is a pause
    text = re.sub(r"([!?])[!?.]+", r"\1", text)
    text = re.sub(r",\s*([,.!?])", r"\1", text)
    text = re.sub(r"\bi\b", "I", text)
    text = re.sub(r"\bi'", "I'", text)
    text = " ".join(text.split())
    # Sentence starts in capitals (all-caps lines had none left).
    text = re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    return text


def dictionary_share(text: str, words: frozenset[str]) -> float:
    """The share of a line's words found in the dictionary (case-insensitive; a plural or possessive
    counts): gibberish, alien talk and sound effects written out score low."""
    tokens = [t.strip(".'").lower() for t in _WORD.findall(text)]
    tokens = [t for t in tokens if t]
    if not tokens:
        return 0.0
    known = lambda t: (t in words or t.rstrip("s") in words or t.split("'")[0] in words
                       or t.replace("in'", "ing") in words)
    return sum(known(t) for t in tokens) / len(tokens)


@dataclass(frozen=True)
class Dictionary:
    """Debian's `wamerican` word list: every word lower-cased, and the names (words listed only
    capitalised, lower-cased here) that an all-caps line must give their capital back."""

    words: frozenset[str]
    proper_nouns: frozenset[str]

    @classmethod
    def load(cls, path: Path = Path("/usr/share/dict/words")) -> "Dictionary":
        if not path.exists():
            raise SystemExit(f"{path} is missing: install the Debian package `wamerican` (scripts/install.sh does)")
        raw = {w.strip() for w in path.read_text(encoding="utf-8", errors="replace").split() if "'" not in w}
        lower = {w for w in raw if w.islower()}
        return cls(frozenset(w.lower() for w in raw), frozenset(w.lower() for w in raw if w.lower() not in lower))


def cap_share(lines: list[GameLine], speaker: str, share: float, seed: int = 0) -> list[GameLine]:
    """Keep at most `share` of the lines by `speaker` ("fotaq:JOE"; a fixed random subset of them)."""
    own = [line for line in lines if line.speaker == speaker]
    others = [line for line in lines if line.speaker != speaker]
    allowed = int(share / (1 - share) * len(others))
    if len(own) <= allowed:
        return lines
    rng = np.random.default_rng(seed)
    kept = {own[i].key for i in rng.choice(len(own), allowed, replace=False)}
    return [line for line in lines if line.speaker != speaker or line.key in kept]


# -- the packages and their audio -------------------------------------------------------------------
def game_root(cache_dir: Path | None = None) -> Path:
    """The unpacked game packages (fetched on first use): `apt-get download` + `dpkg-deb -x`, no install."""
    if cache_dir is None:
        from platformdirs import user_cache_dir

        cache_dir = Path(user_cache_dir("voxprompt")) / "games"
    root = Path(cache_dir) / "root"
    for package in GAME_PACKAGES:
        done = Path(cache_dir) / f"{package}.unpacked"
        if done.exists():
            continue
        debs = Path(cache_dir) / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        try:
            if not list(debs.glob(f"{package}_*.deb")):
                subprocess.run(["apt-get", "download", package], cwd=debs, check=True, capture_output=True)
            deb = next(debs.glob(f"{package}_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError, StopIteration) as error:
            raise SystemExit(f"could not fetch the Debian package {package!r} ({error}): run `apt-get update`, "
                             f"or unpack it yourself into {root}") from error
        done.touch()
        deb.unlink()
    return root


@dataclass
class GameArchive:
    """Both games' voiced lines and their audio, read from the unpacked packages."""

    root: Path

    @cached_property
    def queen(self) -> QueenResources:
        return QueenResources((self.root / QUEEN_FILE).read_bytes())

    def lines(self) -> list[GameLine]:
        speech = self.root / DRASCULA_SPEECH
        texts = drascula_texts((self.root / DRASCULA_TEXT).read_bytes())
        return queen_lines(self.queen) + drascula_lines([p.name for p in speech.iterdir()], texts)

    def audio(self, line: GameLine) -> np.ndarray:
        """The line's speech at 16 kHz, float32; ValueError if it does not decode to finite samples."""
        import soxr

        from voxprompt.audio import SAMPLE_RATE

        if line.game == "fotaq":
            samples = decode_mp3(self.queen.read(line.key))
        else:
            samples = drascula_audio((self.root / DRASCULA_SPEECH / line.key).read_bytes())
        if not len(samples) or not np.isfinite(samples).all():
            raise ValueError(f"{line.key}: no finite audio")
        return soxr.resample(samples, GAME_RATE, SAMPLE_RATE).astype(np.float32)


def decode_mp3(data: bytes) -> np.ndarray:
    """A whole MP3 stream (mono) as float32 at its own rate, decoded by PyAV (FFmpeg)."""
    import io

    import av

    with av.open(io.BytesIO(data)) as container:
        frames = [frame.to_ndarray().astype(np.float32).reshape(-1) for frame in container.decode(audio=0)]
        rate = container.streams.audio[0].rate
    if rate != GAME_RATE:
        raise ValueError(f"expected {GAME_RATE} Hz game speech, found {rate} Hz")
    return np.concatenate(frames) if frames else np.zeros(0, np.float32)


# -- the corpus' lines --------------------------------------------------------------------------------
@dataclass(frozen=True)
class GameSplits:
    train: list[GameLine]  # texts normalised
    dev: list[GameLine]
    dropped: dict[str, int]  # why lines were left out, and how many


def game_splits(lines: list[GameLine], dictionary: Dictionary, min_known: float = 0.5,
                hero_share: float = HERO_SHARE, seed: int = 0, cutaways: bool = False) -> GameSplits:
    """Normalised lines split by character: GAME_DEV_CHARACTERS for development, the rest for training
    (each game's hero capped at `hero_share` of them). Left out: gibberish (under `min_known` dictionary
    words), and FOTAQ's cutaway scenes, whose speaker the data does not name (a held-out character
    may speak there). With `cutaways`, the cutaway lines whose speaker the scene's records name
    (cutaway_speakers) join training as that character; a held-out character's are still left out, so
    the development set stays the same."""
    dropped = {"gibberish": 0, "cutaway (speaker unknown)": 0, "cutaway (held-out character)": 0,
               "hero over the cap": 0}
    train, dev = [], []
    for line in lines:
        if dictionary_share(line.text, dictionary.words) < min_known:
            dropped["gibberish"] += 1
            continue
        text = normalize_game_text(line.text, dictionary.proper_nouns)
        if not re.search(r"[A-Za-z]", text):
            dropped["gibberish"] += 1
        elif line.character.startswith("CUTAWAY"):
            code = line.character.partition(":")[2]
            if not (cutaways and code):
                dropped["cutaway (speaker unknown)"] += 1
            elif f"{line.game}:{code}" in GAME_DEV_CHARACTERS:
                dropped["cutaway (held-out character)"] += 1
            else:
                train.append(GameLine(line.game, code, line.key, text))
        else:
            normalised = GameLine(line.game, line.character, line.key, text)
            (dev if line.speaker in GAME_DEV_CHARACTERS else train).append(normalised)
    capped = train
    for hero in ("fotaq:JOE", "drascula:JOHN"):  # each game's hero, capped within all the training lines
        kept = cap_share(capped, hero, hero_share, seed)
        dropped["hero over the cap"] += len(capped) - len(kept)
        capped = kept
    return GameSplits(capped, dev, dropped)


# -- agreement with a reference recogniser ---------------------------------------------------------
AGREEMENT_MAX_WER = 0.5  # more than half the words differ: the text is not what is said


def agreement_wers(archive: GameArchive, lines: list[GameLine], model_name: str, cache: Path,
                   log=print) -> dict[str, float]:
    """A Whisper model's WER against each line's text, cached in `cache` (JSON, saved as it goes)."""
    from voxprompt.models.evaluate import cached_map, wer, whisper_model, whisper_text

    def check(todo: list[GameLine]):
        log(f"agreement check: Whisper {model_name} on {len(todo)} game lines")
        model = whisper_model(model_name)
        for line in todo:
            try:
                audio = archive.audio(line)
            except ValueError:
                yield 1.0
                continue
            yield round(wer([line.text], [whisper_text(model, audio, without_timestamps=True)]), 4)

    return dict(zip((line.key for line in lines), cached_map(lines, lambda line: line.key, check, cache)))


def agreeing(archive: GameArchive, lines: list[GameLine], model_name: str, cache: Path,
             log=print) -> tuple[list[GameLine], int]:
    """The lines whose audio the Whisper model transcribes within AGREEMENT_MAX_WER of their text, and how
    many were dropped."""
    wers = agreement_wers(archive, lines, model_name, cache, log)
    kept = [line for line in lines if wers[line.key] <= AGREEMENT_MAX_WER]
    return kept, len(lines) - len(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    archive = GameArchive(game_root())
    splits = game_splits(archive.lines(), Dictionary.load())
    for name, lines in (("train", splits.train), ("dev", splits.dev)):
        counts: dict[str, int] = {}
        for line in lines:
            counts[line.speaker] = counts.get(line.speaker, 0) + 1
        print(f"{name}: {len(lines)} lines; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print("left out: " + ", ".join(f"{k} {v}" for k, v in splits.dropped.items()))


if __name__ == "__main__":
    main()
