#!/usr/bin/env python3
"""Compares the tree Switchyard's config loader reads from each file with what PyYAML's
`safe_load` (MLflow's loader) reads from it, over a corpus (default: fuzz/corpus/config_load).

    python3 fuzz/pyyaml_differential.py [DIR ...] [--show N]

Prints how many files both read the same, differently, or only one of them reads, and the first
N differences (default 10). Needs PyYAML (`pip install pyyaml`). Mapping keys are compared as
their source text: the loader keeps keys as text, and no endpoint file has a key that is not.
"""

import datetime
import json
import math
import os
import subprocess
import sys
from collections import Counter

import yaml

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)


class TextKeyLoader(yaml.SafeLoader):
    """safe_load's typing, except that a scalar key stays its source text."""


def _mapping_with_text_keys(loader, node):
    loader.flatten_mapping(node)
    mapping = {}
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            key = key_node.value
        else:
            key = loader.construct_object(key_node, deep=True)
            hash(key)  # a list or mapping as a key: PyYAML refuses the document
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


TextKeyLoader.add_constructor("tag:yaml.org,2002:map", _mapping_with_text_keys)


def comparable(value):
    """PyYAML's values in the shapes JSON gives the loader's tree (dates marked as such)."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return {"<date>": str(value)}
    if isinstance(value, bytes):
        return {"<bytes>": len(value)}
    if isinstance(value, dict):
        return {str(k): comparable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [comparable(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**64:
        return float(value)
    return value


def first_difference(ours, theirs, path="$"):
    """The path and the two values where the trees first differ, or None."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in list(ours) + [k for k in theirs if k not in ours]:
            if key not in ours or key not in theirs:
                return (f"{path}.{key}", ours.get(key, "<missing>"), theirs.get(key, "<missing>"))
            found = first_difference(ours[key], theirs[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            return (path, f"{len(ours)} items", f"{len(theirs)} items")
        for i, (a, b) in enumerate(zip(ours, theirs)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    same_type = type(ours) is type(theirs) or (
        isinstance(ours, (int, float)) and isinstance(theirs, (int, float))
        and not isinstance(ours, bool) and not isinstance(theirs, bool))
    if same_type and (ours == theirs or (isinstance(ours, float) and math.isnan(ours)
                                         and math.isnan(theirs))):
        return None
    return (path, ours, theirs)


def main():
    args = sys.argv[1:]
    show = 10
    if "--show" in args:
        at = args.index("--show")
        show = int(args[at + 1])
        del args[at:at + 2]
    corpora = args or [os.path.join(FUZZ, "corpus", "config_load")]
    run = subprocess.run(
        ["cargo", "run", "--quiet", "--release", "-p", "switchyard-actors", "--example",
         "yaml_tree", "--", *corpora],
        cwd=ROOT, capture_output=True, text=True, check=True)
    counts, differences = Counter(), []
    for line in run.stdout.split("\n"):
        if not line:
            continue
        entry = json.loads(line)
        try:
            with open(entry["file"], encoding="utf-8") as f:
                theirs = comparable(yaml.load(f, Loader=TextKeyLoader))
            pyyaml_reads = True
        except Exception:  # noqa: BLE001 - PyYAML also fails with AttributeError and others
            pyyaml_reads = False
        ours_reads = "tree" in entry
        if ours_reads and pyyaml_reads:
            found = first_difference(entry["tree"], theirs)
            counts["same" if found is None else "different"] += 1
            if found is not None:
                differences.append((os.path.basename(entry["file"]), *found))
        elif pyyaml_reads:
            counts["only PyYAML reads"] += 1
        elif ours_reads:
            counts["only Switchyard reads"] += 1
        else:
            counts["neither reads"] += 1
    print(", ".join(f"{name}: {n}" for name, n in sorted(counts.items())))
    for name, path, ours, theirs in differences[:show]:
        print(f"  {name[:16]} {path}: Switchyard {ours!r:.80} / PyYAML {theirs!r:.80}")


if __name__ == "__main__":
    main()
