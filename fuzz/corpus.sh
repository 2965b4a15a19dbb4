#!/usr/bin/env bash
# The fuzz corpus is committed as one archive (corpus.tar.gz), replayed in place by
# actors/tests/fuzz_corpus.rs. `unpack` lays it out as corpus/<target>/ for `cargo fuzz run`;
# `pack` writes the archive back from that folder after a fuzzing round (byte-for-byte the same
# archive for the same inputs: sorted names, no owners or times).
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-}" in
  unpack)
    rm -rf corpus
    tar -xzf corpus.tar.gz
    echo "corpus/: $(find corpus -type f | wc -l) inputs in $(ls corpus | wc -l) targets"
    ;;
  pack)
    [ -d corpus ] || { echo "no corpus/ to pack (run '$0 unpack' first)" >&2; exit 1; }
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=gnu -cf - corpus \
      | gzip -9n > corpus.tar.gz.new
    mv corpus.tar.gz.new corpus.tar.gz
    echo "corpus.tar.gz: $(find corpus -type f | wc -l) inputs, $(wc -c < corpus.tar.gz) bytes"
    ;;
  *)
    echo "usage: $0 unpack|pack" >&2
    exit 2
    ;;
esac
