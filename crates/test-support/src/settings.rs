//! Test configurations, loaded the way the binary loads them.

use config::{File, FileFormat};
use service_kit::settings::{layers, Deployment, Section, DEVELOPMENT};

/// What every test changes in the defaults (ports, secrets, limits; see the file).
const TEST_LAYER: &str = include_str!("../config/test.toml");

/// The `T` section as a service gets it: `config/default.toml`, then what every test
/// changes (`config/test.toml` of this crate), then `overrides`, then `adjust`, then
/// checked as at start-up. The section is handed the top-level `development` switch
/// (off, as in production) before `adjust`, which may turn it on. `overrides` are keys inside the section
/// (`("limit_global.per_second", "1000000")`) with values written as an environment
/// variable would write them; `adjust` is for what a single test sets in Rust.
///
/// # Panics
/// When an override does not parse or the result is invalid, naming the key: a test
/// must not run on a configuration the binary would refuse.
pub fn config<T: Section>(overrides: &[(&str, &str)], adjust: impl FnOnce(&mut T)) -> T {
    let mut builder = layers(None).add_source(File::from_str(TEST_LAYER, FileFormat::Toml));
    for (key, value) in overrides {
        builder = builder
            .set_override(format!("{}.{key}", T::KEY), *value)
            .unwrap_or_else(|e| panic!("test configuration: {}.{key}: {e}", T::KEY));
    }
    let built = builder.build().unwrap_or_else(|e| panic!("test configuration [{}] does not load: {e}", T::KEY));
    let mut section: T =
        built.get(T::KEY).unwrap_or_else(|e| panic!("test configuration [{}] does not load: {e}", T::KEY));
    let development = built.get_bool(DEVELOPMENT).unwrap_or_else(|e| panic!("test configuration: {DEVELOPMENT}: {e}"));
    section.set_deployment(Deployment { development, served_elsewhere: false });
    adjust(&mut section);
    if let Err(e) = section.validate() {
        panic!("invalid test configuration: {e}");
    }
    section
}

#[cfg(test)]
mod tests {
    use service_kit::redis_conn::RedisConfig;

    use super::*;

    #[test]
    fn overrides_replace_defaults_and_the_rest_comes_from_config_default_toml() {
        let redis: RedisConfig = config(&[("key_prefix", "bo_test_settings"), ("command_timeout_ms", "250")], |_| {});
        assert_eq!((redis.key_prefix.as_str(), redis.command_timeout_ms), ("bo_test_settings", 250));
        assert_eq!(redis.connect_timeout_ms, 1000);
    }

    /// The shared test layer is a section's second layer, under the test's overrides.
    #[test]
    fn the_test_layer_lies_between_the_defaults_and_the_overrides() {
        #[derive(serde::Deserialize)]
        struct Scheduler {
            listen: std::net::SocketAddr,
            check_invariants_every_secs: u64,
            release_batch: i64,
        }
        impl Section for Scheduler {
            const KEY: &'static str = "scheduler";
            fn validate(&self) -> Result<(), String> {
                Ok(())
            }
        }
        let scheduler: Scheduler = config(&[("check_invariants_every_secs", "1")], |_| {});
        assert_eq!(scheduler.listen.to_string(), "127.0.0.1:0", "from the test layer");
        assert_eq!(scheduler.check_invariants_every_secs, 1, "the override");
        assert_eq!(scheduler.release_batch, 500, "the default");
    }

    #[test]
    #[should_panic(expected = "invalid test configuration: redis.command_timeout_ms must be between 1 and 60000")]
    fn an_invalid_test_configuration_fails_the_test_naming_the_key() {
        let _: RedisConfig = config(&[("command_timeout_ms", "0")], |_| {});
    }

    #[test]
    #[should_panic(expected = "invalid test configuration: redis.key_prefix")]
    fn what_adjust_sets_is_checked_too() {
        let _: RedisConfig = config(&[], |redis: &mut RedisConfig| redis.key_prefix.clear());
    }
}
