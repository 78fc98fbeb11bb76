//! A test's own key prefix on the shared Redis, and the guard that deletes its keys.

use std::time::Duration;

use service_kit::redis_conn::RedisConfig;

/// How long dropping a [`RedisKeys`] may wait to connect, and then for each reply: a
/// Redis that does not answer must not hang the test that is ending.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Keys asked for per `SCAN` step; the shared Redis may hold a benchmark's million keys.
const SCAN_COUNT: usize = 10_000;

/// A key prefix no other test uses, on the shared Redis ([`redis_url`](crate::redis_url));
/// dropping it deletes every key under it, also when the test panics (the drop runs
/// while the panic unwinds), so no test leaves keys behind on the server all tests share.
/// A test that runs a `redis-server` of its own does not need one: its keys go with
/// the server.
pub struct RedisKeys {
    url: String,
    prefix: String,
}

impl RedisKeys {
    pub fn new() -> Self {
        Self { url: crate::redis_url(), prefix: crate::redis_prefix() }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How a service reaches these keys: `[redis]` of `config/default.toml` with the
    /// shared Redis's URL and this prefix.
    pub fn config(&self) -> RedisConfig {
        crate::config(&[("url", &self.url), ("key_prefix", &self.prefix)], |_| {})
    }

    /// Deletes every key under the prefix and returns how many there were. Blocking:
    /// it runs in `drop`, which cannot await.
    fn delete_all(&self) -> redis::RedisResult<usize> {
        let mut conn = redis::Client::open(self.url.as_str())?.get_connection_with_timeout(CLEANUP_TIMEOUT)?;
        conn.set_read_timeout(Some(CLEANUP_TIMEOUT))?;
        conn.set_write_timeout(Some(CLEANUP_TIMEOUT))?;
        // The prefix is `bo_test_` and hex, so it holds no glob characters. A key that
        // SCAN returns twice is unlinked twice, which is harmless; UNLINK frees the
        // memory off Redis's main thread.
        let pattern = format!("{}*", self.prefix);
        let (mut cursor, mut deleted) = (0u64, 0);
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query(&mut conn)?;
            if !keys.is_empty() {
                deleted += redis::cmd("UNLINK").arg(&keys).query::<usize>(&mut conn)?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

impl Default for RedisKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        // Never panic here: during a test's panic that would abort the whole test binary.
        if let Err(e) = self.delete_all() {
            eprintln!("test-support: could not delete the Redis keys under {}: {e}", self.prefix);
        }
    }
}

#[cfg(test)]
mod tests {
    use redis::Commands;

    use super::*;

    fn connection() -> redis::Connection {
        redis::Client::open(crate::redis_url()).unwrap().get_connection_with_timeout(CLEANUP_TIMEOUT).unwrap()
    }

    /// Distinct keys: SCAN may return a key twice while Redis resizes its table (as
    /// it does after these tests add and delete thousands of keys).
    fn count(conn: &mut redis::Connection, prefix: &str) -> usize {
        let keys: redis::RedisResult<std::collections::HashSet<String>> =
            conn.scan_match(format!("{prefix}*")).unwrap().collect();
        keys.unwrap().len()
    }

    #[test]
    fn every_key_under_the_prefix_is_deleted_when_the_test_panics_and_no_other() {
        let mut conn = connection();
        let (keys, neighbour) = (RedisKeys::new(), RedisKeys::new());
        let prefix = keys.prefix().to_owned();
        // More keys than one SCAN step returns, of the kinds the waiting room writes.
        let mut pipe = redis::pipe();
        for i in 0..(SCAN_COUNT + 500) {
            pipe.set(format!("{prefix}:fan:{i}"), i).ignore();
        }
        pipe.zadd(format!("{prefix}:{{event}}:queue"), "fan", 1).ignore();
        pipe.set(format!("{}:event", neighbour.prefix()), 1).ignore();
        pipe.query::<()>(&mut conn).unwrap();
        assert_eq!(count(&mut conn, &prefix), SCAN_COUNT + 501);

        let test = std::thread::spawn(move || {
            let _keys = keys;
            panic!("a failing test");
        });
        assert!(test.join().is_err(), "the test panicked");
        assert_eq!(count(&mut conn, &prefix), 0, "its keys went with it");
        assert_eq!(count(&mut conn, neighbour.prefix()), 1, "another test's keys stay");

        let neighbour_prefix = neighbour.prefix().to_owned();
        drop(neighbour);
        assert_eq!(count(&mut conn, &neighbour_prefix), 0);
    }
}
