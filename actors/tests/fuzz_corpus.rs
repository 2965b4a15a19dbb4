//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same checks the fuzz
//! targets run, so every test run re-proves what fuzzing found, on stable Rust.

use std::path::Path;

use switchyard_actors::fuzz_checks;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} made the check panic",
            path.display()
        );
        count += 1;
    }
    assert!(count > 0, "{target}: the corpus is empty");
}

#[test]
fn config_load_corpus() {
    replay("config_load", fuzz_checks::config_load);
}

#[test]
fn request_validation_corpus() {
    replay("request_validation", fuzz_checks::request_validation);
}

#[test]
fn stream_framing_corpus() {
    replay("stream_framing", fuzz_checks::stream_framing);
}

#[test]
fn openai_responses_corpus() {
    replay("openai_responses", fuzz_checks::openai_responses);
}
