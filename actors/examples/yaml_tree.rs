//! Prints, for each file in the directories given, the tree the config loader reads from it (or
//! why it refuses it) as one JSON line: `{"file", "tree"}` or `{"file", "error"}`. Used by
//! `fuzz/pyyaml_differential.py` to compare with PyYAML.

// A developer's tool: a failed unwrap ends it with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

fn main() -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for dir in std::env::args().skip(1) {
        let mut paths: Vec<_> = std::fs::read_dir(&dir)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        for path in paths {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue; // not UTF-8: no endpoint file
            };
            let file = path.display().to_string();
            let line = match switchyard_actors::config::yaml_tree(&text) {
                Ok(tree) => serde_json::json!({ "file": file, "tree": tree }),
                Err(error) => serde_json::json!({ "file": file, "error": error.to_string() }),
            };
            writeln!(out, "{line}")?;
        }
    }
    out.flush()
}
