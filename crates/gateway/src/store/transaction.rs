use sqlx::{PgConnection, PgPool};

use crate::error::Result;

/// Runs `work` in one transaction: commits when it succeeds, and otherwise rolls back
/// before returning, so a refused order's row locks are gone by the time the fan
/// hears why. A transaction that is merely dropped is rolled back only when the pool
/// next touches its connection, a moment later: long enough for the fan's retry to
/// find the seats still locked and be told they are sold out.
pub async fn in_transaction<T>(pool: &PgPool, work: impl AsyncFnOnce(&mut PgConnection) -> Result<T>) -> Result<T> {
    let mut tx = pool.begin().await?;
    match work(&mut tx).await {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback) = tx.rollback().await {
                // The connection is closed rather than reused, which ends the transaction.
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(error)
        }
    }
}
