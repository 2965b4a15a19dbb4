#!/usr/bin/env python3
"""Source coverage of the gateway's own code (actors/src, src) reached by a fuzz target's corpus.

libFuzzer's edge count ("cov:") also counts serde_json, std and every library inlined into the
gateway, which keep yielding new edges long after the gateway's own code stops changing. This
counts what the fuzzing is for: the code regions of our own source files the corpus runs.

    python3 fuzz/own_coverage.py TARGET [CORPUS_DIR ...] [--uncovered FILE ...]

CORPUS_DIR defaults to fuzz/corpus/TARGET. Prints the covered own regions; with
--uncovered, the lines of each FILE (relative to actors/src or src) that no input ran.
Needs cargo-fuzz and LLVM's llvm-profdata / llvm-cov of rustc's LLVM version (Debian: llvm-22),
the former linked into the toolchain where `cargo fuzz coverage` looks for it:
    ln -s /usr/bin/llvm-profdata-22 "$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/llvm-profdata"
"""

import json
import os
import shutil
import subprocess
import sys

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
OWN = (os.path.join(ROOT, "actors", "src") + "/", os.path.join(ROOT, "src") + "/")
BINARY = "target/x86_64-unknown-linux-gnu/coverage/x86_64-unknown-linux-gnu/release/{}"


def llvm_cov():
    for name in ("llvm-cov-22", "llvm-cov"):
        if shutil.which(name):
            return name
    sys.exit("llvm-cov not found (Debian: apt-get install llvm-22)")


def profile(target, corpora):
    """Runs `cargo fuzz coverage` over the corpora; returns the merged profile's path."""
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    shutil.rmtree(os.path.join(FUZZ, "coverage", target), ignore_errors=True)
    run = subprocess.run(["cargo", "fuzz", "coverage", "-O", target, *corpora],
                         cwd=FUZZ, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(run.stderr[-3000:])
    return os.path.join(FUZZ, "coverage", target, "coverage.profdata")


def own_regions(target, profdata):
    """(covered, all) code regions of own source, in the functions the corpus ran at least once
    (so configuration-only and request-side code the target never calls does not count)."""
    export = subprocess.run(
        [llvm_cov(), "export", os.path.join(FUZZ, BINARY.format(target)),
         f"-instr-profile={profdata}", "-skip-expansions"],
        capture_output=True, text=True, check=True).stdout
    covered, every = set(), set()
    for function in json.loads(export)["data"][0]["functions"]:
        files = function["filenames"]
        if not files or not files[0].startswith(OWN) or function["count"] == 0:
            continue
        for line_start, col_start, line_end, col_end, count, file_id, _, kind in (
                r[:8] for r in function["regions"]):
            if kind != 0 or not files[file_id].startswith(OWN):
                continue  # only code regions, and only our own files
            region = (files[file_id], line_start, col_start, line_end, col_end)
            every.add(region)
            if count > 0:
                covered.add(region)
    return covered, every


def uncovered_lines(target, profdata, source):
    path = next((p + source for p in OWN if os.path.exists(p + source)), source)
    shown = subprocess.run(
        [llvm_cov(), "show", os.path.join(FUZZ, BINARY.format(target)),
         f"-instr-profile={profdata}", "-sources", path],
        capture_output=True, text=True, check=True).stdout
    for line in shown.splitlines():
        number, _, rest = line.partition("|")
        count, _, text = rest.partition("|")
        if number.strip().isdigit() and count.strip() == "0":
            print(f"  {source}:{number.strip()}: {text.strip()}")


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    files = args[args.index("--uncovered") + 1:] if "--uncovered" in args else []
    args = args[:args.index("--uncovered")] if "--uncovered" in args else args
    target, corpora = args[0], args[1:] or [os.path.join("corpus", args[0])]
    profdata = profile(target, corpora)
    covered, every = own_regions(target, profdata)
    print(f"{target}: {len(covered)} of {len(every)} own regions covered "
          "in the functions the corpus runs")
    for source in files:
        uncovered_lines(target, profdata, source)


if __name__ == "__main__":
    main()
