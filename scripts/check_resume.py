#!/usr/bin/env python3
"""An interrupted archive batch, resumed: nothing finished is lost or redone.

    python scripts/check_resume.py [--minutes 60] [--files 12] [--stop-after 0.4] [--ray]

Builds an archive of `--files` recordings (the asterisk prompts, real speech, joined with pauses) of
`--minutes` in all, runs `voxprompt transcribe ARCHIVE --recursive --output-dir OUT --format json` as a
user does, sends Ctrl-C (SIGINT) once `--stop-after` of the files are complete, then runs the same command
again. Checks and prints: the files complete before the stop are skipped and untouched (same bytes, same
modification time), the interrupted file's partial transcript was kept and is now complete, every file
has a complete transcript, and the resumed run transcribed only what was missing.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ray import make_files  # noqa: E402


def complete(out: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("*.json")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--stop-after", type=float, default=0.4, help="share of files complete at the Ctrl-C")
    parser.add_argument("--ray", action="store_true", help="run both with --ray (a local cluster)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive, out = Path(tmp) / "archive", Path(tmp) / "out"
        archive.mkdir()
        make_files(archive, args.minutes, args.files)
        command = [sys.executable, "-m", "voxprompt", "transcribe", str(archive), "--recursive", "--output-dir",
                   str(out), "--format", "json", "--quiet"] + (["--ray"] if args.ray else [])
        t0 = time.perf_counter()
        first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        target = max(1, int(args.stop_after * args.files))
        while len(complete(out)) < target and first.poll() is None:
            time.sleep(0.5)
        time.sleep(5.0)  # into the next file
        first.send_signal(signal.SIGINT)
        first_err = first.communicate()[1]
        t1 = time.perf_counter()
        before = complete(out)
        kept = sorted(p.name for p in out.glob("*.partial"))
        second = subprocess.run(command, stderr=subprocess.PIPE, text=True)
        t2 = time.perf_counter()
        after = complete(out)
        untouched = [name for name in before if after.get(name) == before[name]]
        summary = [line for line in second.stderr.splitlines() if "transcribed," in line]
        print(f"archive: {args.files} files, {args.minutes:.0f} min of audio")
        print(f"| run | wall, min | exit | complete transcripts after it | partials kept |")
        print(f"|---|---|---|---|---|")
        print(f"| first, Ctrl-C after {target} files | {(t1 - t0) / 60:.1f} | {first.returncode} | {len(before)} | "
              f"{', '.join(kept) or '-'} |")
        print(f"| same command again | {(t2 - t1) / 60:.1f} | {second.returncode} | {len(after)} | - |")
        print(f"\nresumed run: {summary[-1] if summary else second.stderr[-500:]}")
        print(f"transcripts complete before the stop left untouched: {len(untouched)} of {len(before)}")
        docs = [json.loads(p.read_text()) for p in out.glob("*.json")]
        ok = (len(untouched) == len(before) and len(after) == args.files and second.returncode == 0
              and not list(out.glob("*.partial")) and f"{args.files - len(before)} transcribed" in " ".join(summary)
              and all(d["segments"] for d in docs))
        print("PASS" if ok else "FAIL")
        if not ok:
            print(first_err[-2000:], second.stderr[-2000:], sep="\n")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
