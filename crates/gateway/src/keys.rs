//! The waiting room's public keys, read again from `tokens.keys_dir` while serving, so
//! keys rotate without a restart: publish the new public key, let the waiting room sign
//! with the new private key, remove the old public key once its tokens have expired.
//! A reload keeps the verified-token cache, and a key gone from the directory stays
//! trusted for [`KEEP_REMOVED_FOR`], the longest an access token it signed can be valid.
//! A directory that cannot be read, or holds a bad key file, changes nothing (logged).
//!
//! The ticket keys (`tickets.keys_dir`) are read again the same way: a public key added
//! is published in the JWKS (so scanners hold it before any ticket is signed with it),
//! one removed is no longer published nor trusted for scans, and a signing key whose
//! file appears (a pod started before its Secret was mounted) is put in use, without a
//! restart. Switching `tickets.signing_kid` is a configuration change: a rolling
//! restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use access_token::TokenVerifier;
use sales::tickets::TicketKeys;
use sales::Sales;
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

/// Reads the ticket keys (`<dir>/<signing_kid>.private.pem` and every public key) every
/// `every` until `shutdown`, and puts them in use in `sales` when they changed.
pub fn spawn_ticket_key_reloader(
    sales: Sales,
    dir: PathBuf,
    signing_kid: String,
    every: Duration,
    shutdown: CancellationToken,
) {
    spawn_every(every, shutdown, move || {
        let (sales, dir, kid) = (sales.clone(), dir.clone(), signing_kid.clone());
        async move {
            let signing_kid = kid.clone();
            match tokio::task::spawn_blocking(move || TicketKeys::read(&dir, &kid)).await {
                Ok(Ok(keys)) => {
                    let in_use = sales.ticket_keys();
                    if in_use.as_deref().is_none_or(|current| !current.same_as(&keys)) {
                        let kids: Vec<String> = keys.jwks().iter().map(|k| k["kid"].to_string()).collect();
                        tracing::info!(%signing_kid, published = ?kids, "ticket keys reloaded");
                        sales.set_ticket_keys(Arc::new(keys));
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "reading the ticket keys failed; keeping the keys in use"),
                Err(e) => tracing::warn!(error = %e, "reading the ticket keys failed; keeping the keys in use"),
            }
        }
    });
}

/// Runs `reload` every `every` until `shutdown`; not at once (the keys were read at
/// start-up), and never two at a time (a slow read delays the next tick).
fn spawn_every<F, Fut>(every: Duration, shutdown: CancellationToken, reload: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            reload().await;
        }
    });
}
