//! What each subcommand does: build the services from settings and run them until
//! SIGTERM or Ctrl-C.

use std::path::Path;

use access_token::{KeyPair, TokenVerifier};
use anyhow::Context;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

pub async fn gateway(settings: &Settings) -> anyhow::Result<()> {
    let pool = database(settings).await?;
    let public_keys = access_token::keys::read_public_keys(&settings.tokens.keys_dir)
        .context("the gateway needs the waiting room's public keys (run `boxoffice keygen`)")?;
    let verifier = TokenVerifier::new(&public_keys, settings.gateway.token_leeway_secs);
    let app = gateway::Application::build(&settings.gateway, pool, verifier)
        .await
        .with_context(|| format!("cannot listen on {}", settings.gateway.listen))?;
    let shutdown = shutdown_on_signal();
    app.run(shutdown).await?;
    Ok(())
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = settings.database.pool()?;
    gateway::MIGRATOR.run(&pool).await.context("applying migrations")?;
    tracing::info!("migrations applied");
    Ok(())
}

pub fn keygen(kid: &str, dir: &Path, force: bool) -> anyhow::Result<()> {
    let private = dir.join(format!("{kid}.private.pem"));
    if private.exists() && !force {
        anyhow::bail!("{} exists; pass --force to replace it", private.display());
    }
    let (private, public) = KeyPair::generate(kid)?.write_to_dir(dir)?;
    println!("wrote {} and {}", private.display(), public.display());
    Ok(())
}

async fn database(settings: &Settings) -> anyhow::Result<PgPool> {
    let pool = settings.database.pool()?;
    if settings.database.migrate_on_start {
        gateway::MIGRATOR.run(&pool).await.context("applying migrations at start-up")?;
    }
    Ok(pool)
}

/// Cancelled on SIGTERM or Ctrl-C: every service stops accepting and drains.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; Ctrl-C still works");
                let _ = ctrl_c.await;
                cancel.cancel();
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}
