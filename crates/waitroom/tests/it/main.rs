//! Integration tests against the real Redis (`BOXOFFICE_TEST_REDIS_URL`, by default
//! 127.0.0.1:6379), each test under its own key prefix (deleted when the test ends,
//! passed or not) with a PostgreSQL database of its own; the outage and durability
//! tests run a `redis-server` of their own where they stop or wipe it.

mod admission;
mod backpressure;
mod client_address;
mod durability;
mod errors;
mod helpers;
mod idle;
mod inventory;
mod latency;
mod management;
mod openapi;
mod outage;
mod page_origins;
mod polls;
mod pow;
mod prequeue;
mod queue;
mod receipts;
mod release;
mod retention;
mod sell_out;
mod slow_clients;
mod streams;
mod tokens;
