//! Where every service's configuration comes from, in the order later layers win: the
//! built-in defaults (`config/default.toml`, compiled in), an optional file, then what
//! the caller adds (the binary: `BOXOFFICE__SECTION__KEY` environment variables; tests:
//! their overrides). One loader for both, so a test runs the configuration an operator
//! would get, checked the same way.
//!
//! It lives here, not in the binary, because the binary's [`Section`]s belong to the
//! service crates and `test-support` must load them without depending on those crates
//! (they depend on it for their tests).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;

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

    /// Hands the section what the loader knows of the deployment (the [`DEVELOPMENT`]
    /// switch; whether this process serves it); the loaders call it before
    /// [`Section::validate`]. A section with development conveniences or known
    /// development secrets keeps it; the others ignore it.
    fn set_deployment(&mut self, _deployment: Deployment) {}

    /// Checks the values serde cannot: ranges, lengths, how settings relate. The error
    /// names the key, e.g. `gateway.admin_api_key must be at least 16 characters`.
    fn validate(&self) -> Result<(), String>;
}

/// The top-level switch for running on a developer's machine or a local cluster, off by
/// default (`BOXOFFICE__DEVELOPMENT=true`). It allows what a sale open to the public must
/// not: the known development secrets of `config/default.toml` on a listener other
/// machines can reach ([`refuse_development_secret`]), and fan ids a client chooses
/// without the organizer's signature (the waiting room's `fan_id_secret`).
pub const DEVELOPMENT: &str = "development";

/// A value everyone can read in this repository: `key`'s value in `config/default.toml`,
/// or any value carrying the `change-me` marker every development secret here carries
/// (the local Kubernetes overlay's included).
pub fn is_development_value(key: &str, value: &str) -> bool {
    static DEFAULT_VALUES: OnceLock<config::Config> = OnceLock::new();
    let defaults = DEFAULT_VALUES.get_or_init(|| {
        config::Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()
            .expect("config/default.toml is valid TOML")
    });
    value.contains("change-me") || defaults.get_string(key).is_ok_and(|default| default == value)
}

/// What a section cannot know by itself, handed over by the loader
/// ([`Section::set_deployment`]). The default is the strictest: not development, served
/// here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deployment {
    /// The top-level [`DEVELOPMENT`] switch.
    pub development: bool,
    /// This process does not serve the section: the binary loads and checks every
    /// section whatever it runs, but a gateway pod binds no waiting-room listener and,
    /// holding no key it does not use (D6), none of the waiting room's secrets. Such a
    /// section's listeners expose nothing here, so its development secrets are not
    /// refused here (the process that serves it refuses them).
    pub served_elsewhere: bool,
}

impl Deployment {
    /// Refuses the secret `value` of `key` (`"gateway.admin_api_key"`) when it is a
    /// known development value ([`is_development_value`]) that this process would
    /// expose to other machines: it serves the section, some of the section's
    /// `listeners` is not on loopback, and the [`DEVELOPMENT`] switch is off. One
    /// missing environment variable would otherwise fall back, silently, to a secret
    /// anyone can read here.
    pub fn refuse_development_secret(&self, key: &str, value: &str, listeners: &[SocketAddr]) -> Result<(), String> {
        let loopback_only = listeners.iter().all(|listener| listener.ip().to_canonical().is_loopback());
        if self.development || self.served_elsewhere || loopback_only || !is_development_value(key, value) {
            return Ok(());
        }
        Err(development_secret_refused(key))
    }
}

fn development_secret_refused(key: &str) -> String {
    let variable = format!("BOXOFFICE__{}", key.to_uppercase().replace('.', "__"));
    format!(
        "{key} is the development default, refused on a listener other machines can reach; set {variable} \
         (or {key} in --config FILE) to a secret of your own, listen on loopback only, or, for a development \
         deployment, set development = true (BOXOFFICE__DEVELOPMENT=true)"
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "gateway.admin_api_key";
    const DEV_KEY: &str = "dev-admin-key-change-me";

    fn listeners(addresses: &[&str]) -> Vec<SocketAddr> {
        addresses.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn development_values_are_the_defaults_and_anything_marked_change_me() {
        assert!(is_development_value(KEY, DEV_KEY));
        assert!(is_development_value("waitroom.ticket_secret", "dev-ticket-secret-change-me-0123456789"));
        assert!(is_development_value("waitroom.fan_id_secret", "dev-fan-id-secret-change-me-0123456789"));
        assert!(!is_development_value(KEY, "a-real-admin-key-0123456789"));
    }

    #[test]
    fn a_development_secret_is_refused_only_when_this_process_exposes_it_outside_development() {
        let production = Deployment::default();
        let refuse = |deployment: Deployment, value: &str, addresses: &[&str]| {
            deployment.refuse_development_secret(KEY, value, &listeners(addresses))
        };
        let refused = refuse(production, DEV_KEY, &["0.0.0.0:8081"]).unwrap_err();
        assert!(refused.starts_with("gateway.admin_api_key is the development default"), "{refused}");
        assert!(refused.contains("BOXOFFICE__GATEWAY__ADMIN_API_KEY"), "{refused}");
        assert!(refuse(production, DEV_KEY, &["127.0.0.1:8081", "[::]:9000"]).is_err(), "every listener counts");
        for local in [&["127.0.0.1:8081"][..], &["[::1]:8081", "127.0.0.2:1"], &["[::ffff:127.0.0.1]:8081"]] {
            assert_eq!(refuse(production, DEV_KEY, local), Ok(()), "{local:?}");
        }
        let development = Deployment { development: true, ..production };
        assert_eq!(refuse(development, DEV_KEY, &["0.0.0.0:8081"]), Ok(()));
        let elsewhere = Deployment { served_elsewhere: true, ..production };
        assert_eq!(refuse(elsewhere, DEV_KEY, &["0.0.0.0:8081"]), Ok(()), "not served by this process");
        assert_eq!(refuse(production, "a-real-admin-key-0123", &["0.0.0.0:8081"]), Ok(()));
    }
}

/// A list setting read from a TOML list or from one comma-separated string (environment
/// variables carry no lists), each entry trimmed, empty ones dropped.
pub fn list_of_strings<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Entries {
        List(Vec<String>),
        CommaSeparated(String),
    }
    let entries = match <Entries as serde::Deserialize>::deserialize(deserializer)? {
        Entries::List(entries) => entries,
        Entries::CommaSeparated(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(entries.iter().map(|entry| entry.trim()).filter(|entry| !entry.is_empty()).map(str::to_owned).collect())
}

/// Whether `text` is a web origin as browsers send it in `Origin`: `http://` or
/// `https://`, a host, an optional port, and nothing after them (the parser gives an
/// absolute URI without a path the path `/`).
pub fn is_origin(text: &str) -> bool {
    axum::http::Uri::try_from(text).is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.authority().is_some_and(|authority| !authority.as_str().contains('@'))
            && uri.path_and_query().is_none_or(|path| path.as_str() == "/")
            && !text.ends_with('/')
    })
}

#[cfg(test)]
mod origin_tests {
    use super::is_origin;

    #[test]
    fn an_origin_is_a_scheme_a_host_and_a_port_with_nothing_after() {
        for origin in ["http://127.0.0.1:8081", "https://tickets.example.com", "http://[::1]:8081"] {
            assert!(is_origin(origin), "{origin}");
        }
        for not_origin in [
            "127.0.0.1:8081",
            "ftp://a.example",
            "https://a.example/",
            "https://a.example/x",
            "https://u@a.example",
            "*",
            "",
        ] {
            assert!(!is_origin(not_origin), "{not_origin}");
        }
    }
}
