//! Every metric the scheduler records, named in one place.

/// Holds ended by the sweep because they expired.
pub const HOLDS_RELEASED: &str = "boxoffice_scheduler_holds_released_total";
/// Idempotency keys deleted after their retention.
pub const IDEMPOTENCY_KEYS_PURGED: &str = "boxoffice_scheduler_idempotency_keys_purged_total";
/// Job runs that failed, by job.
pub const JOB_FAILURES: &str = "boxoffice_scheduler_job_failures_total";
