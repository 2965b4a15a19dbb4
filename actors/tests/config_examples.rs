//! Every example config shipped in `config/` must load (STYLE habit 5): a broken example is a
//! broken promise in the README.

use std::path::PathBuf;

use switchyard_actors::config::{load_file, LoadOptions};

/// Supplies every `$VAR` the examples reference, so they load without real keys.
fn example_env(_name: &str) -> Option<String> {
    Some("test-key".to_owned())
}

#[test]
fn every_example_config_loads() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config");
    let opts = LoadOptions {
        env: &example_env,
        resolve_keys: true,
        allowed_providers: None,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            // `settings*` files are server settings, not endpoint configs.
            (name.ends_with(".yaml") || name.ends_with(".yml")) && !name.starts_with("settings")
        })
        .collect();
    entries.sort();
    assert!(
        !entries.is_empty(),
        "no example configs in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for path in &entries {
        if let Err(errors) = load_file(path, &opts) {
            failures.push(format!("{}:\n{errors}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
