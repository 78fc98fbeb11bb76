//! The waiting room's public keys, read again from `tokens.keys_dir` while serving, so
//! keys rotate without a restart: publish the new public key, let the waiting room sign
//! with the new private key, remove the old public key once its tokens have expired.
//! A reload keeps the verified-token cache, and a key gone from the directory stays
//! trusted for [`KEEP_REMOVED_FOR`], the longest an access token it signed can be valid.
//! A directory that cannot be read, or holds a bad key file, changes nothing (logged).
//!
//! The ticket keys (`tickets.keys_dir`) are read again the same way by
//! [`sales::tickets::TicketKeyring::spawn_reloader`], which the scheduler shares.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use access_token::TokenVerifier;
use service_kit::periodic::spawn_every;
use tokio_util::sync::CancellationToken;

/// An access token lives at most a day (`waitroom_events.token_lifetime_secs`), plus at
/// most `gateway.token_leeway_secs` (300 s) of clock leeway. To distrust a key at once
/// (it leaked), restart the gateways without its file.
pub const KEEP_REMOVED_FOR: Duration = Duration::from_secs(86_400 + 300);

/// Reads `dir` every `every` until `shutdown` and hands what it finds to `verifier`.
pub fn spawn_reloader(verifier: Arc<TokenVerifier>, dir: PathBuf, every: Duration, shutdown: CancellationToken) {
    spawn_every(every, shutdown, move || {
        let (verifier, dir) = (verifier.clone(), dir.clone());
        async move {
            let read = tokio::task::spawn_blocking(move || access_token::keys::read_public_keys(&dir)).await;
            match read {
                Ok(Ok(keys)) => {
                    let changes = verifier.reload(&keys, KEEP_REMOVED_FOR);
                    if !changes.is_empty() {
                        tracing::info!(
                            added = ?changes.added,
                            replaced = ?changes.replaced,
                            removed = ?changes.removed,
                            dropped = ?changes.dropped,
                            "access-token public keys reloaded"
                        );
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "reading the public keys failed; keeping the keys trusted now")
                }
                Err(e) => tracing::warn!(error = %e, "reading the public keys failed; keeping the keys trusted now"),
            }
        }
    });
}
