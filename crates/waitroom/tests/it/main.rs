//! Integration tests against the real Redis at 127.0.0.1:6379, each test under its
//! own key prefix; the outage tests run a `redis-server` of their own.

mod admission;
mod helpers;
mod latency;
mod outage;
mod prequeue;
mod queue;
mod tokens;
