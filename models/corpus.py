"""Training text: everyday English with numbers, names and punctuation, cased as a person writes it.

Sources are installed offline: Debian's fortune files (sentences split out and filtered) and a
template generator for the dictation staples (times, dates, amounts, phone numbers, names).
Deterministic for a seed.
"""
from __future__ import annotations

import random
import re

from voxprompt.models.assets import data_path

FORTUNE_DIR = data_path("/usr/share/games/fortunes", "fortunes")  # Debian fortunes, fortunes-min
# Categories with ordinary prose (the off-colour and ASCII-art ones are left out).
FORTUNE_FILES = ("fortunes", "literature", "riddles", "computers", "cookie", "education", "food", "humorists",
                 "kids", "law", "love", "magic", "medicine", "miscellaneous", "news", "people", "pets",
                 "platitudes", "politics", "science", "sports", "wisdom", "work", "pratchett", "startrek")

_ALLOWED = re.compile(r"^[A-Za-z0-9 ,.;:!?'\"$%&()\-]+$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


def fortune_sentences(min_words: int = 3, max_words: int = 24) -> list[str]:
    """Sentences from the installed fortune files, one-line, plain ASCII, sensibly sized."""
    sentences: list[str] = []
    for name in FORTUNE_FILES:
        path = FORTUNE_DIR / name
        if not path.exists():
            continue
        for entry in path.read_text(encoding="latin-1").split("\n%\n"):
            if re.search(r"\n\s{2,}|\t|--\s*\w", entry):  # verse, tables, attributions
                entry = entry.split("\n\t")[0].split("\n  ")[0]
            text = " ".join(entry.split())
            for sentence in _SENTENCE_END.split(text):
                words = sentence.split()
                if min_words <= len(words) <= max_words and _ALLOWED.match(sentence) and sentence[0].isupper():
                    sentences.append(sentence)
    return sorted(set(sentences))


FIRST = ["Anna", "James", "Maria", "David", "Sophie", "Michael", "Priya", "Tom", "Elena", "Kevin", "Grace",
         "Omar", "Laura", "Daniel", "Chloe", "Sam", "Nina", "Peter", "Julia", "Ahmed", "Emma", "Lucas"]
LAST = ["Smith", "Johnson", "Garcia", "Brown", "Miller", "Wilson", "Taylor", "Anderson", "Thomas", "Moore",
        "Martin", "Clark", "Lewis", "Walker", "Young", "King", "Wright", "Scott", "Green", "Baker"]
PLACES = ["London", "Boston", "Chicago", "Paris", "Berlin", "Dublin", "Seattle", "Toronto", "Madrid", "Denver"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
THINGS = ["the report", "the invoice", "the slides", "the contract", "the budget", "the tickets", "the keys",
          "the package", "the results", "the draft", "the photos", "the schedule"]


def _time(r: random.Random) -> str:
    return f"{r.randint(1, 12)}:{r.choice(['00', '15', '30', '45', '10', '20'])}"


def template_sentences(n: int, seed: int = 0) -> list[str]:
    """Dictation-like sentences with numbers, names, dates and amounts."""
    r = random.Random(seed)
    name = lambda: f"{r.choice(FIRST)} {r.choice(LAST)}"
    templates = [
        lambda: f"Please call {name()} at {r.randint(200, 999)}-{r.randint(0, 9999):04d} before {_time(r)}.",
        lambda: f"The meeting with {r.choice(FIRST)} moved to {r.choice(DAYS)} at {_time(r)}.",
        lambda: f"Send {r.choice(THINGS)} to {name()} by {r.choice(MONTHS)} {r.randint(1, 28)}.",
        lambda: f"We spent ${r.randint(2, 900)}.{r.randint(0, 99):02d} on supplies last week.",
        lambda: f"My flight to {r.choice(PLACES)} leaves at {_time(r)} on {r.choice(DAYS)}.",
        lambda: f"Remind me to pick up {r.choice(THINGS)} at {_time(r)} tomorrow.",
        lambda: f"There are {r.randint(2, 60)} people on the list and {r.randint(2, 20)} are still missing.",
        lambda: f"{r.choice(FIRST)} said the numbers for {r.choice(MONTHS)} look {r.choice(['good', 'better', 'worse', 'fine'])}.",
        lambda: f"Can you check whether {r.choice(THINGS)} arrived in {r.choice(PLACES)}?",
        lambda: f"It was {r.randint(40, 99)} degrees in {r.choice(PLACES)} on {r.choice(DAYS)}.",
        lambda: f"Dear {r.choice(['Mr.', 'Ms.', 'Dr.'])} {r.choice(LAST)}, thank you for your letter of {r.choice(MONTHS)} {r.randint(1, 28)}.",
        lambda: f"Order {r.randint(2, 12)} boxes and {r.randint(2, 30)} chairs for room {r.randint(100, 450)}.",
        lambda: f"The train from {r.choice(PLACES)} is {r.randint(5, 55)} minutes late.",
        lambda: f"{r.choice(FIRST)} and {r.choice(FIRST)} will join us in {r.choice(PLACES)} next {r.choice(DAYS)}.",
        lambda: f"About {r.randint(10, 95)} percent of the tests passed on the first try.",
    ]
    return [r.choice(templates)() for _ in range(n)]


def training_texts(n: int, seed: int = 0, exclude: set[str] = frozenset(), template_share: float = 0.3) -> list[str]:
    """n sentences: fortunes and templates mixed, shuffled, none from `exclude` (held-out texts)."""
    r = random.Random(seed)
    prose = [s for s in fortune_sentences() if s not in exclude]
    r.shuffle(prose)
    n_templates = int(n * template_share)
    texts = template_sentences(n_templates, seed) + (prose * (1 + n // max(1, len(prose))))[: n - n_templates]
    r.shuffle(texts)
    return texts


CARDINALS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
             "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand "
             "million").split()
ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
            "fifteenth sixteenth seventeenth eighteenth nineteenth twentieth thirtieth fortieth fiftieth sixtieth "
            "seventieth eightieth ninetieth hundredth thousandth").split()
LETTERS = list("abcdefghijklmnopqrstuvwxyz")
NATO = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec "
        "romeo sierra tango uniform victor whiskey x-ray yankee zulu").split()
SHORT_WORDS = ("yes no okay hello goodbye thanks please stop cancel send delete added removed enabled disabled "
               "transfer extension number time minute minutes second seconds hour hours today tomorrow yesterday "
               "morning evening plus minus star pound dot dash slash comma period space at and from with for to or "
               "the new next previous first last message messages mailbox greeting password menu option options "
               "record play pause repeat help operator agent queue call calls caller busy unavailable").split()


def short_texts(n: int, seed: int = 0, exclude: set[str] = frozenset()) -> list[str]:
    """n isolated words and two- or three-word fragments (numbers, ordinals, letters, spelling-alphabet
    words, days, months, commands), cased and punctuated in the ways people write them. Sentence
    corpora have none, and a model that never heard a lone word answers one with a fragment."""
    r = random.Random(seed)
    pools = [CARDINALS, ORDINALS, LETTERS, NATO, DAYS, MONTHS, SHORT_WORDS]
    banned = {_plain(t) for t in exclude}
    out: list[str] = []
    while len(out) < n:
        words = [r.choice(r.choice(pools)) for _ in range(r.choice([1, 1, 1, 2, 3]))]
        text = " ".join(words)
        style = r.random()
        if style < 0.3 and len(text) > 1:
            text = text[0].upper() + text[1:]
        elif style < 0.5 and len(text) > 1:
            text = text[0].upper() + text[1:] + "."
        if _plain(text) not in banned:
            out.append(text)
    return out


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


# Words no dictionary has, as users' names, products and jargon are to a general model: made of
# syllables so a TTS voice reads them by rule, with the endings drug names and terms often have.
_ONSETS = ("b", "br", "c", "ch", "cl", "d", "dr", "f", "fl", "g", "gr", "h", "k", "l", "m", "n", "p", "pr",
           "ph", "qu", "r", "s", "st", "sh", "t", "tr", "th", "v", "w", "z", "")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ea", "ou")
_CODAS = ("", "", "", "", "n", "r", "l", "s", "x", "m", "t")
_ENDINGS = ("", "", "", "ine", "ol", "ex", "itis", "amab", "ide", "ia", "an", "on", "ix", "ara", "osis", "ium")


def coined_word(r: random.Random) -> str:
    """A pronounceable word of 6-12 letters that is in no dictionary (most likely), cased as a name
    (a third of them) or as a term."""
    while True:
        word = "".join(r.choice(_ONSETS) + r.choice(_VOWELS) + r.choice(_CODAS) for _ in range(r.randint(2, 3)))
        word += r.choice(_ENDINGS)
        if 6 <= len(word) <= 12 and re.fullmatch(r"[a-z]+", word):
            return word.capitalize() if r.random() < 0.33 else word


def coined_texts(n: int, seed: int = 0, exclude: set[str] = frozenset()) -> list[tuple[str, tuple[str, ...]]]:
    """n (sentence, coined words) pairs: everyday sentences with one or two of their words of 4+
    letters (never the first) replaced by coined words, so that only the audio, or a context that
    lists them, can tell how they are spelt."""
    r = random.Random(seed)
    out: list[tuple[str, tuple[str, ...]]] = []
    for text in training_texts(2 * n, seed=seed, exclude=exclude):
        words = text.split(" ")
        slots = [i for i, w in enumerate(words) if i > 0 and re.fullmatch(r"[A-Za-z]{4,}[,.;:!?]?", w)]
        if not slots:
            continue
        coined = []
        for i in r.sample(slots, min(len(slots), r.choice((1, 1, 2)))):
            word = coined_word(r)
            words[i] = word + words[i][len(words[i].rstrip(",.;:!?")):]  # keeps the punctuation
            coined.append(word)
        out.append((" ".join(words), tuple(coined)))
        if len(out) == n:
            break
    return out
