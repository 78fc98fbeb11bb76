//! Background work repeated on a fixed interval while a service runs (key files read
//! again, for example).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `work` every `every` until `shutdown`; not at once (the caller did the first
/// round at start-up), and never two at a time (a slow round delays the next tick).
pub fn spawn_every<F, Fut>(every: Duration, shutdown: CancellationToken, work: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
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
            work().await;
        }
    });
}
