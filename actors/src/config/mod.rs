//! Endpoint configuration: the YAML file, from raw text to a validated [`GatewayConfig`].
//!
//! # Layout
//!
//! - [`model`]: the validated types the runtime reads.
//! - [`providers`]: provider names and the typed per-provider `model.config` blocks.
//! - [`load`]: the public entry points ([`load_str`], [`load_file`]) and the whole-document walk.
//! - [`keys`]: `$ENV_VAR` / key-file / literal API-key resolution.
//! - [`limits`]: the `limit.renewal_period` grammar.
//! - `yaml`: the untyped tree, with plain scalars typed by PyYAML's (YAML 1.1) rules.
//! - `endpoints`, `routes`, `blocks`, `aws`, `fields`: the per-part checks behind [`load`].

mod aws;
mod blocks;
mod endpoints;
mod fields;
pub mod keys;
pub mod limits;
pub mod load;
pub mod model;
pub mod providers;
mod routes;
#[cfg(test)]
mod test_support;
mod yaml;

pub use load::{
    load_file, load_str, parse_allowed_providers, yaml_tree, ConfigErrors, ConfigIssue,
    LoadOptions, Loaded,
};
pub use model::*;
pub use providers::*;
