"""Transcript files: standard formats, each segment on disk as soon as it exists (in this run's own
partial file), the transcript under its name only once it is complete."""
import json

import pytest

from voxprompt.outputs import OutputError
from voxprompt.transcriber import Segment, Timing
from voxprompt.writers import format_timestamp, open_writer

T = Timing(1.0, 1.0, 1.0, 1)


def seg(start, end, text):
    return Segment(start, end, text, [1, 2], T)


def test_timestamps():
    assert format_timestamp(3725.5, ",", always_hours=True) == "01:02:05,500"
    assert format_timestamp(65.0429) == "01:05.043"


def test_srt_entries_are_numbered_and_flushed(tmp_path):
    w = open_writer("srt", tmp_path / "talk.srt", tmp_path / "talk.flac")
    w.add(seg(0.5, 2.0, "Hello there."))
    assert w.partial.read_text() == "1\n00:00:00,500 --> 00:00:02,000\nHello there.\n\n"
    assert not (tmp_path / "talk.srt").exists()  # not complete yet
    w.add(seg(3.0, 4.25, "Second line."))
    w.close()
    assert (tmp_path / "talk.srt").read_text().split("\n\n")[1].startswith("2\n00:00:03,000 --> 00:00:04,250")
    assert not w.partial.exists()


def test_vtt_header_and_empty_segments_skipped(tmp_path):
    w = open_writer("vtt", tmp_path / "a.vtt", tmp_path / "a.wav")
    w.add(seg(0, 1, ""))
    w.add(seg(1, 2, "Text."))
    w.close()
    assert (tmp_path / "a.vtt").read_text() == "WEBVTT\n\n00:01.000 --> 00:02.000\nText.\n\n"


def test_json_is_valid_after_every_segment(tmp_path):
    w = open_writer("json", tmp_path / "a.json", tmp_path / "a.ogg")
    assert json.loads(w.partial.read_text())["segments"] == []
    w.add(seg(0, 1, "One."))
    doc = json.loads(w.partial.read_text())
    assert doc["text"] == "One." and doc["segments"][0]["tokens"] == [1, 2]
    w.add(seg(1, 2, "Two."))
    w.close()
    assert json.loads((tmp_path / "a.json").read_text())["text"] == "One. Two."
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize("fmt", ["txt", "json"])
def test_aborting_keeps_what_was_written_only_when_asked(tmp_path, fmt):
    w = open_writer(fmt, tmp_path / f"a.{fmt}", tmp_path / "a.wav")
    w.add(seg(0, 1, "One."))
    assert w.abort(keep=True) == tmp_path / f"a.{fmt}.partial"
    assert "One." in (tmp_path / f"a.{fmt}.partial").read_text()
    w = open_writer(fmt, tmp_path / f"b.{fmt}", tmp_path / "b.wav")
    w.add(seg(0, 1, "One."))
    assert w.abort() is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"a.{fmt}.partial"]


def test_a_folder_gone_while_writing_is_an_output_error_naming_the_transcript(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    w = open_writer("json", out / "a.json", tmp_path / "a.wav")
    out.rename(tmp_path / "moved")
    with pytest.raises(OutputError, match="a.json: cannot write the transcript"):
        w.add(seg(0, 1, "One."))
