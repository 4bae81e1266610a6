"""Dictation keeps the words two successive partial decodes agree on: later decodes begin with them
instead of searching them again, so the final decodes only the utterance's last words."""
import re

import numpy as np

from conftest import silence
from voxprompt.dictation import DictationEngine, DictationOptions, Final, Partial, agreed_tokens
from voxprompt.models.evaluate import ReplayedSpeech, wer

PIECES = [" The", " cat", " sat", " on", " un", "mute", "d", " your", ",", "."]
WORD_STARTS = {i for i, p in enumerate(PIECES) if p.startswith(" ")}


def ids(*pieces: str) -> list[int]:
    return [PIECES.index(p) for p in pieces]


def agreed(previous: list[int], latest: list[int]) -> list[str]:
    return [PIECES[t] for t in agreed_tokens(previous, latest, WORD_STARTS.__contains__)]


def test_words_both_decodes_share_are_agreed_up_to_the_newest_word():
    assert agreed(ids(" The", " cat", " sat"), ids(" The", " cat", " sat", " on")) == [" The", " cat", " sat"]
    assert agreed(ids(" The", " cat"), ids(" The", " cat")) == [" The"]  # " cat" is at the edge of the audio


def test_a_word_whose_pieces_differ_is_not_agreed_even_in_part():
    assert agreed(ids(" un", "mute", " your"), ids(" un", "mute", "d", " your")) == []
    assert agreed(ids(" The", " un", "mute", " your"), ids(" The", " un", "mute", "d", " your")) == [" The"]


def test_punctuation_stays_with_its_word():
    assert agreed(ids(" The", " cat", ",", " sat"), ids(" The", " cat", ",", " sat", ".")) == [" The", " cat", ","]
    assert agreed(ids(" The", " cat", ","), ids(" The", " cat", ".", " sat")) == [" The"]


def test_nothing_is_agreed_between_different_openings():
    assert agreed(ids(" The", " cat", " sat"), ids(" on", " cat", " sat", " on")) == []
    assert agreed([], ids(" The", " cat")) == []


def test_the_final_begins_with_what_two_partials_agreed_on(transcriber, recording_audio, recording,
                                                           asterisk_transcripts):
    t = transcriber
    calls = []  # (given, tokens) of every decode, in order
    decode = t.transcribe_segment

    def spy(segment, *args, **kwargs):
        result = decode(segment, *args, **kwargs)
        if result is not None:  # a partial cut short when the speaker paused gives none
            calls.append((list(kwargs.get("given", ())), result.tokens))
        return result

    t.transcribe_segment = spy
    events = []
    try:
        audio = np.concatenate([silence(0.5), recording_audio, silence(1.0)])
        finals = DictationEngine(t, ReplayedSpeech(audio), events.append, DictationOptions()).replay()
    finally:
        del t.transcribe_segment
    partials = [e for e in events if isinstance(e, Partial)]
    assert len(finals) == 1 and len(partials) >= 3
    given, tokens = calls[-1]
    assert given and tokens[:len(given)] == given  # the final went on from agreed words
    partial_tokens = [tokens for _, tokens in calls[:-1]]
    assert any(a[:len(given)] == b[:len(given)] == given for a, b in zip(partial_tokens, partial_tokens[1:]))
    spoken = re.sub(r"\(.*?\)", "", asterisk_transcripts[recording.stem])
    assert wer([spoken], [finals[0].text]) <= 0.35, finals[0].text
    assert [e for e in events if isinstance(e, Final)] == finals  # sent as events too
