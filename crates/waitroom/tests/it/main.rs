//! Integration tests against the real Redis at 127.0.0.1:6379, each test under its
//! own key prefix with a PostgreSQL database of its own; the outage and durability
//! tests run a `redis-server` of their own where they stop or wipe it.

mod admission;
mod durability;
mod helpers;
mod latency;
mod openapi;
mod outage;
mod prequeue;
mod queue;
mod slow_clients;
mod tokens;
