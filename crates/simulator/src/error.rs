use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("scenario: {0}")]
    Scenario(String),
    #[error("{0}: the simulator only sends traffic to this machine (127.0.0.1, ::1 or localhost)")]
    NotLoopback(String),
    #[error("setting up the sale: {0}")]
    Setup(String),
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("checking the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("checking the database: {0}")]
    Invariants(#[from] sales::Error),
}
