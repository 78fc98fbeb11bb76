//! The whole configuration: the layers of [`service_kit::settings`] (embedded defaults
//! from `config/default.toml`, then an optional file), then `BOXOFFICE__SECTION__KEY`
//! environment variables; checked before anything starts, each section as tests check
//! theirs ([`Section::validate`]) and then the rules that span sections.

use std::path::{Path, PathBuf};

use anyhow::Context;
use gateway::GatewayConfig;
use scheduler::SchedulerConfig;
use serde::Deserialize;
use service_kit::postgres::PostgresConfig;
use service_kit::redis_conn::RedisConfig;
use service_kit::settings::{layers, Deployment, Section};
use service_kit::telemetry::LogConfig;
use waitroom::WaitroomConfig;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// The development switch ([`service_kit::settings::DEVELOPMENT`]); every section
    /// gets it before it is checked.
    pub development: bool,
    pub database: PostgresConfig,
    pub redis: RedisConfig,
    pub log: LogConfig,
    pub tokens: TokenKeys,
    pub tickets: SigningKeyFiles,
    pub receipts: SigningKeyFiles,
    pub gateway: GatewayConfig,
    pub waitroom: WaitroomConfig,
    pub scheduler: SchedulerConfig,
}

/// Where the access-token keys live.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenKeys {
    pub keys_dir: PathBuf,
    /// The key the waiting room signs with: `<keys_dir>/<signing_kid>.private.pem`.
    pub signing_kid: String,
}

impl TokenKeys {
    pub fn signing_key_path(&self) -> PathBuf {
        self.keys_dir.join(format!("{}.private.pem", self.signing_kid))
    }
}

/// Where the keys of one purpose other than access tokens live (DECISIONS.md D6):
/// `[tickets]`, the e-ticket keys, and `[receipts]`, the admission-receipt keys. Each
/// in a directory of its own, apart from `tokens.keys_dir` (a key there would be
/// trusted for access tokens).
#[derive(Debug, Clone, Deserialize)]
pub struct SigningKeyFiles {
    /// `<signing_kid>.private.pem` signs (ticket secrets, receipts); every
    /// `*.public.pem` is published in the JWKS with its purpose and verifies.
    pub keys_dir: PathBuf,
    pub signing_kid: String,
}

/// Every service's section, for a process that serves them all (`boxoffice all`).
pub const ALL_SERVICES: &[&str] = &[GatewayConfig::KEY, WaitroomConfig::KEY, SchedulerConfig::KEY];

impl Settings {
    /// Loads and validates the configuration of a process serving the sections named
    /// in `serves` (`[GatewayConfig::KEY]` for `boxoffice gateway`); the error says
    /// which key is wrong. Every section is checked, but the development secrets only
    /// of those served: a gateway holds no waiting-room secret.
    pub fn load(file: Option<&Path>, serves: &[&str]) -> anyhow::Result<Self> {
        Self::load_with_env(file, serves, None)
    }

    /// `env` replaces the process environment (for tests).
    fn load_with_env(
        file: Option<&Path>,
        serves: &[&str],
        env: Option<config::Map<String, String>>,
    ) -> anyhow::Result<Self> {
        let mut settings: Settings = layers(file)
            .add_source(
                config::Environment::with_prefix("BOXOFFICE").prefix_separator("__").separator("__").source(env),
            )
            .build()
            .and_then(config::Config::try_deserialize)
            .context("invalid configuration")?;
        settings.hand_over_deployment(serves);
        settings.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok(settings)
    }

    fn hand_over_deployment(&mut self, serves: &[&str]) {
        let development = self.development;
        let of = |key: &str| Deployment { development, served_elsewhere: !serves.contains(&key) };
        self.database.set_deployment(of(PostgresConfig::KEY));
        self.redis.set_deployment(of(RedisConfig::KEY));
        self.gateway.set_deployment(of(GatewayConfig::KEY));
        self.waitroom.set_deployment(of(WaitroomConfig::KEY));
        self.scheduler.set_deployment(of(SchedulerConfig::KEY));
    }

    fn validate(&self) -> Result<(), String> {
        self.database.validate()?;
        self.redis.validate()?;
        self.gateway.validate()?;
        self.waitroom.validate()?;
        self.scheduler.validate()?;
        if self.gateway.http.request_timeout() <= self.database.longest_work() {
            return Err("gateway.http.request_timeout_ms must be longer than database.acquire_timeout_ms + \
                 database.work_deadline_ms, so database work answers first"
                .into());
        }
        if self.tokens.signing_kid.is_empty() {
            return Err("tokens.signing_kid must not be empty".into());
        }
        if self.tickets.signing_kid.is_empty() {
            return Err("tickets.signing_kid must not be empty".into());
        }
        if self.tickets.keys_dir == self.tokens.keys_dir {
            return Err("tickets.keys_dir must differ from tokens.keys_dir: a ticket key there would be trusted \
                 for access tokens"
                .into());
        }
        if self.receipts.signing_kid.is_empty() {
            return Err("receipts.signing_kid must not be empty".into());
        }
        if self.receipts.keys_dir == self.tokens.keys_dir || self.receipts.keys_dir == self.tickets.keys_dir {
            return Err("receipts.keys_dir must differ from tokens.keys_dir and tickets.keys_dir: a key signs for \
                 one purpose only"
                .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<config::Map<String, String>> {
        Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn the_built_in_defaults_are_valid() {
        let settings = Settings::load_with_env(None, ALL_SERVICES, env(&[])).unwrap();
        assert_eq!(settings.gateway.listen.port(), 8081);
        assert_eq!(settings.tokens.signing_key_path(), PathBuf::from("keys/dev.private.pem"));
    }

    #[test]
    fn environment_variables_override_defaults() {
        use secrecy::ExposeSecret;
        let settings = Settings::load_with_env(
            None,
            ALL_SERVICES,
            env(&[
                ("BOXOFFICE__GATEWAY__LISTEN", "0.0.0.0:9000"),
                ("BOXOFFICE__GATEWAY__ADMIN_API_KEY", "a-real-admin-key-0123456789"),
                ("BOXOFFICE__GATEWAY__PAYMENTS__SECRET_KEY", "sk_live_of_our_own"),
                ("BOXOFFICE__GATEWAY__PAYMENTS__WEBHOOK_SECRETS", "whsec_new, whsec_old"),
                ("BOXOFFICE__DATABASE__MAX_CONNECTIONS", "4"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.gateway.listen.port(), 9000);
        assert_eq!(settings.database.max_connections, 4);
        let secrets: Vec<&str> = settings.gateway.payments.webhook_secrets.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(secrets, ["whsec_new", "whsec_old"]);
    }

    #[test]
    fn confirmation_emails_are_off_by_default_and_an_environment_variable_turns_them_on() {
        let defaults = Settings::load_with_env(None, ALL_SERVICES, env(&[])).unwrap();
        assert_eq!(defaults.scheduler.smtp.url(), None);
        let settings = Settings::load_with_env(
            None,
            ALL_SERVICES,
            env(&[
                ("BOXOFFICE__SCHEDULER__SMTP__URL", "smtp://127.0.0.1:2525"),
                ("BOXOFFICE__SCHEDULER__SMTP__SEND_TIMEOUT_MS", "10000"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.scheduler.smtp.url(), Some("smtp://127.0.0.1:2525"));
        assert_eq!(settings.scheduler.smtp.send_timeout_ms, 10_000);
    }

    #[test]
    fn redis_timeouts_have_defaults_and_environment_overrides() {
        let defaults = Settings::load_with_env(None, ALL_SERVICES, env(&[])).unwrap();
        assert_eq!((defaults.redis.command_timeout_ms, defaults.redis.connect_timeout_ms), (500, 1000));
        let settings = Settings::load_with_env(
            None,
            ALL_SERVICES,
            env(&[("BOXOFFICE__REDIS__COMMAND_TIMEOUT_MS", "250"), ("BOXOFFICE__REDIS__CONNECT_TIMEOUT_MS", "2000")]),
        )
        .unwrap();
        assert_eq!((settings.redis.command_timeout_ms, settings.redis.connect_timeout_ms), (250, 2000));
    }

    #[test]
    fn no_proxy_is_trusted_by_default_and_an_environment_variable_lists_them() {
        let defaults = Settings::load_with_env(None, ALL_SERVICES, env(&[])).unwrap();
        assert!(defaults.gateway.client_address.trusted_proxies.is_empty());
        assert!(defaults.waitroom.client_address.trusted_proxies.is_empty());
        let settings = Settings::load_with_env(
            None,
            ALL_SERVICES,
            env(&[
                ("BOXOFFICE__WAITROOM__CLIENT_ADDRESS__TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7"),
                ("BOXOFFICE__WAITROOM__CLIENT_ADDRESS__HEADER", "x-real-ip"),
            ]),
        )
        .unwrap();
        let proxies: Vec<String> =
            settings.waitroom.client_address.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.7/32"]);
        assert_eq!(settings.waitroom.client_address.header, "x-real-ip");
        assert!(settings.gateway.client_address.trusted_proxies.is_empty());
    }

    #[test]
    fn a_file_overrides_defaults_and_the_environment_overrides_the_file() {
        let file = std::env::temp_dir().join(format!("boxoffice-settings-{}.toml", std::process::id()));
        std::fs::write(&file, "[gateway]\nlisten = \"127.0.0.1:7000\"\nbest_available_attempts = 5\n").unwrap();
        let settings = Settings::load_with_env(
            Some(&file),
            ALL_SERVICES,
            env(&[("BOXOFFICE__GATEWAY__LISTEN", "127.0.0.1:7001")]),
        )
        .unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(settings.gateway.listen.port(), 7001);
        assert_eq!(settings.gateway.best_available_attempts, 5);
    }

    #[test]
    fn development_secrets_are_refused_on_a_public_listener_unless_in_development() {
        let public = ("BOXOFFICE__GATEWAY__LISTEN", "0.0.0.0:8081");
        let error = Settings::load_with_env(None, ALL_SERVICES, env(&[public])).unwrap_err();
        let error = format!("{error:#}");
        assert!(error.contains("gateway.admin_api_key is the development default"), "{error}");
        assert!(error.contains("BOXOFFICE__GATEWAY__ADMIN_API_KEY"), "{error}");
        let error =
            Settings::load_with_env(None, ALL_SERVICES, env(&[("BOXOFFICE__WAITROOM__LISTEN", "0.0.0.0:8080")]))
                .unwrap_err();
        assert!(format!("{error:#}").contains("waitroom.admin_api_key is the development default"), "{error:#}");
        let error = Settings::load_with_env(
            None,
            ALL_SERVICES,
            env(&[
                ("BOXOFFICE__WAITROOM__LISTEN", "[::]:8080"),
                ("BOXOFFICE__WAITROOM__ADMIN_API_KEY", "a-real-admin-key-0123"),
            ]),
        )
        .unwrap_err();
        assert!(format!("{error:#}").contains("waitroom.ticket_secret is the development default"), "{error:#}");

        Settings::load_with_env(None, ALL_SERVICES, env(&[("BOXOFFICE__GATEWAY__LISTEN", "127.0.0.1:8081")]))
            .expect("loopback");
        let settings = Settings::load_with_env(
            None,
            ALL_SERVICES,
            env(&[public, ("BOXOFFICE__WAITROOM__LISTEN", "0.0.0.0:8080"), ("BOXOFFICE__DEVELOPMENT", "true")]),
        )
        .expect("the development switch");
        assert!(settings.development && settings.waitroom.deployment.development);
        assert!(settings.gateway.deployment.development);
        assert!(!Settings::load_with_env(None, ALL_SERVICES, env(&[])).unwrap().development, "off by default");

        // A gateway process binds no waiting-room listener and holds none of its secrets.
        let shared = [public, ("BOXOFFICE__WAITROOM__LISTEN", "0.0.0.0:8080")];
        let error = Settings::load_with_env(None, &[GatewayConfig::KEY], env(&shared)).unwrap_err();
        assert!(format!("{error:#}").contains("gateway.admin_api_key is the development default"), "{error:#}");
        let gateway_pod = [
            shared[0],
            shared[1],
            ("BOXOFFICE__GATEWAY__ADMIN_API_KEY", "a-real-admin-key-0123"),
            ("BOXOFFICE__GATEWAY__PAYMENTS__SECRET_KEY", "sk_live_of_our_own"),
            ("BOXOFFICE__GATEWAY__PAYMENTS__WEBHOOK_SECRETS", "whsec_of_our_own"),
        ];
        Settings::load_with_env(None, &[GatewayConfig::KEY], env(&gateway_pod)).expect("waitroom secrets unchecked");
        let error = Settings::load_with_env(None, ALL_SERVICES, env(&gateway_pod)).unwrap_err();
        assert!(format!("{error:#}").contains("waitroom.admin_api_key"), "boxoffice all serves both: {error:#}");
    }

    #[test]
    fn invalid_values_are_refused_naming_the_key() {
        let cases = [
            ("BOXOFFICE__GATEWAY__LISTEN", "not-an-address", "gateway.listen"),
            ("BOXOFFICE__DATABASE__MAX_CONNECTIONS", "0", "database.max_connections"),
            ("BOXOFFICE__DATABASE__URL", "mysql://nope", "database.url"),
            ("BOXOFFICE__GATEWAY__ADMIN_API_KEY", "short", "gateway.admin_api_key"),
            ("BOXOFFICE__DATABASE__WORK_DEADLINE_MS", "1000", "database.work_deadline_ms"),
            ("BOXOFFICE__GATEWAY__HTTP__REQUEST_TIMEOUT_MS", "4000", "gateway.http.request_timeout_ms"),
            ("BOXOFFICE__WAITROOM__HTTP__HEADER_READ_TIMEOUT_MS", "0", "waitroom.http.header_read_timeout_ms"),
            ("BOXOFFICE__REDIS__COMMAND_TIMEOUT_MS", "0", "redis.command_timeout_ms"),
            ("BOXOFFICE__REDIS__CONNECT_TIMEOUT_MS", "600000", "redis.connect_timeout_ms"),
            ("BOXOFFICE__WAITROOM__DATABASE_MAX_CONNECTIONS", "0", "waitroom.database_max_connections"),
            (
                "BOXOFFICE__GATEWAY__CLIENT_ADDRESS__TRUSTED_PROXIES",
                "10.0.0.0/33",
                "gateway.client_address.trusted_proxies",
            ),
            (
                "BOXOFFICE__GATEWAY__CLIENT_ADDRESS__TRUSTED_PROXIES",
                "0.0.0.0/0",
                "gateway.client_address.trusted_proxies",
            ),
            (
                "BOXOFFICE__WAITROOM__CLIENT_ADDRESS__TRUSTED_PROXIES",
                "proxy.local",
                "waitroom.client_address.trusted_proxies",
            ),
            ("BOXOFFICE__WAITROOM__CLIENT_ADDRESS__HEADER", "bad header", "waitroom.client_address.header"),
            ("BOXOFFICE__SCHEDULER__SMTP__URL", "mail.example.com:25", "scheduler.smtp.url"),
            ("BOXOFFICE__SCHEDULER__SMTP__SEND_TIMEOUT_MS", "0", "scheduler.smtp.connect_timeout_ms"),
            ("BOXOFFICE__SCHEDULER__CONFIRMATION_EMAILS__LEASE_MS", "1000", "scheduler.confirmation_emails.lease_ms"),
        ];
        for (key, value, named) in cases {
            let error = Settings::load_with_env(None, ALL_SERVICES, env(&[(key, value)])).unwrap_err();
            assert!(format!("{error:#}").contains(named), "{key}={value}: {error:#}");
        }
    }
}
