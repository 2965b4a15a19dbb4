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
