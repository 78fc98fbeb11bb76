//! Where every service's configuration comes from, in the order later layers win: the
//! built-in defaults (`config/default.toml`, compiled in), an optional file, then what
//! the caller adds (the binary: `BOXOFFICE__SECTION__KEY` environment variables; tests:
//! their overrides). One loader for both, so a test runs the configuration an operator
//! would get, checked the same way.
//!
//! It lives here, not in the binary, because the binary's [`Section`]s belong to the
//! service crates and `test-support` must load them without depending on those crates
//! (they depend on it for their tests).

use std::path::Path;

use config::builder::DefaultState;
use config::{ConfigBuilder, File, FileFormat};
use serde::de::DeserializeOwned;

/// Every setting with its local default.
const DEFAULTS: &str = include_str!("../../../config/default.toml");

/// One section of the configuration (`[gateway]`, `[database]`, …): where it lives and
/// how it is checked at start-up.
pub trait Section: DeserializeOwned {
    /// The section's key in `config/default.toml`, which starts every message naming
    /// one of its keys.
    const KEY: &'static str;

    /// Checks the values serde cannot: ranges, lengths, how settings relate. The error
    /// names the key, e.g. `gateway.admin_api_key must be at least 16 characters`.
    fn validate(&self) -> Result<(), String>;
}

/// The built-in defaults, then `file` if given; the caller adds its own layer on top
/// and builds.
pub fn layers(file: Option<&Path>) -> ConfigBuilder<DefaultState> {
    let builder = config::Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
    match file {
        Some(file) => builder.add_source(File::from(file).required(true)),
        None => builder,
    }
}
