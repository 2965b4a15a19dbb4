//! Replays the committed fuzz corpus through the same checks the fuzz targets run, so every test
//! run re-proves what fuzzing found, on stable Rust.
//!
//! The corpus is committed as one archive, `fuzz/corpus.tar.gz` (about 5 MB for some 51,000
//! inputs), instead of a file per input: a checkout stays small and every input is still replayed.
//! `fuzz/corpus.sh unpack` lays it out as `fuzz/corpus/<target>/` for `cargo fuzz run`, and
//! `fuzz/corpus.sh pack` writes the archive back after a fuzzing round.

// A test crate: a failed unwrap or assertion is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::{Component, Path};

use flate2::read::GzDecoder;
use switchyard_actors::fuzz_checks;

/// Every input of `target` in the archive, with its path for the failure message.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus.tar.gz");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let mut found = Vec::new();
    for entry in archive.entries().expect("a tar.gz archive") {
        let mut entry = entry.expect("an archive entry");
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().expect("an entry path").into_owned();
        let parts: Vec<Component> = name.components().collect();
        // corpus/<target>/<input>
        let in_target = matches!(
            parts.as_slice(),
            [Component::Normal(top), Component::Normal(dir), Component::Normal(_)]
                if *top == "corpus" && *dir == target
        );
        if in_target {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("an entry's bytes");
            found.push((name.display().to_string(), data));
        }
    }
    found
}

fn replay(target: &str, check: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "{target}: the corpus is empty");
    for (name, data) in &inputs {
        let outcome = std::panic::catch_unwind(|| check(data));
        assert!(outcome.is_ok(), "{target}: {name} made the check panic");
    }
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

#[test]
fn provider_anthropic_corpus() {
    replay("provider_anthropic", fuzz_checks::provider_anthropic);
}

#[test]
fn provider_mistral_corpus() {
    replay("provider_mistral", fuzz_checks::provider_mistral);
}

#[test]
fn provider_togetherai_corpus() {
    replay("provider_togetherai", fuzz_checks::provider_togetherai);
}

#[test]
fn provider_gemini_corpus() {
    replay("provider_gemini", fuzz_checks::provider_gemini);
}

#[test]
fn provider_cohere_corpus() {
    replay("provider_cohere", fuzz_checks::provider_cohere);
}

#[test]
fn provider_palm_corpus() {
    replay("provider_palm", fuzz_checks::provider_palm);
}

#[test]
fn provider_tgi_corpus() {
    replay("provider_tgi", fuzz_checks::provider_tgi);
}

#[test]
fn provider_mlflow_serving_corpus() {
    replay(
        "provider_mlflow_serving",
        fuzz_checks::provider_mlflow_serving,
    );
}

#[test]
fn provider_ai21labs_corpus() {
    replay("provider_ai21labs", fuzz_checks::provider_ai21labs);
}

#[test]
fn provider_mosaicml_corpus() {
    replay("provider_mosaicml", fuzz_checks::provider_mosaicml);
}

#[test]
fn provider_portkey_corpus() {
    replay("provider_portkey", fuzz_checks::provider_portkey);
}

#[test]
fn provider_databricks_corpus() {
    replay("provider_databricks", fuzz_checks::provider_databricks);
}

#[test]
fn provider_bedrock_corpus() {
    replay("provider_bedrock", fuzz_checks::provider_bedrock);
}
