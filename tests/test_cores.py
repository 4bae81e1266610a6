"""voxprompt shares the cores: it sees how many other processes keep busy and gives llama.cpp fewer
threads meanwhile (threads that wait on a core someone else holds slow every step)."""
import os
import subprocess
import sys
import time

import pytest

from voxprompt.cores import OtherLoad
from voxprompt.llm import LlmOptions, release_openmp_threads
from voxprompt.transcriber import Transcriber


def test_a_busy_process_elsewhere_counts_and_our_own_work_does_not():
    load = OtherLoad()
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # this process, busy
        pass
    assert load.cores() < 0.5
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # past its start-up
        load.cores()
        time.sleep(0.6)
        assert load.cores() > 0.6
    finally:
        busy.kill()
        busy.wait()


def test_one_thread_gives_the_same_transcript_as_all(transcriber, recording_audio):
    t = transcriber
    segment = next(t.segments(iter([recording_audio])))
    every = t.llm.threads  # one per physical core
    whole = t.transcribe_segment(segment).tokens
    t.llm.set_threads(1)
    try:
        assert t.llm.threads == 1
        assert t.transcribe_segment(segment).tokens == whole
    finally:
        t.llm.set_threads(every)


def test_llama_cpp_decodes_with_a_thread_fewer_while_another_process_holds_a_core(transcriber, recording_audio):
    t = transcriber
    most = t.llm.threads
    if most < 2:
        pytest.skip("one core: no thread to give back")
    segment = next(t.segments(iter([recording_audio])))
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # past its start-up and the load's window
        t.transcribe_segment(segment)
        assert t.llm.threads < most
    finally:
        busy.kill()
        busy.wait()
        t.llm.set_threads(most)


def _threads_settled() -> int:
    """This process's threads, once OpenMP workers that were let go have exited."""
    count, stable_since = len(os.listdir("/proc/self/task")), time.monotonic()
    deadline = stable_since + 3.0
    while time.monotonic() < deadline and time.monotonic() - stable_since < 0.3:
        time.sleep(0.02)
        now = len(os.listdir("/proc/self/task"))
        if now != count:
            count, stable_since = now, time.monotonic()
    return count


def test_loading_a_model_leaves_no_openmp_workers_behind_on_the_loading_thread(default_model_dir, recording_audio):
    """libgomp keeps a pool of workers for every thread that has run llama.cpp, and once the pools hold
    more threads than there are cores its barriers stop spinning: a model loaded on the main thread and
    decoded on dictation's worker thread decoded 1.7x slower on 2 cores."""
    t = Transcriber(default_model_dir, llm_options=LlmOptions(n_parallel=1, n_threads=2))
    try:
        loaded = _threads_settled()
        t.transcribe_segment(next(t.segments(iter([recording_audio]))))  # this thread's workers start
        decoding = _threads_settled()
        release_openmp_threads()
        released = _threads_settled()
    finally:
        t.close()
    assert released < decoding  # decoding here started workers, and releasing let them go
    assert loaded == released  # so had the load
