//! Gateway integration tests: the real app on a random port, a fresh PostgreSQL
//! database per test, real HTTP.

mod admin;
mod bookings;
mod checkout;
mod errors;
mod events;
mod fan_limits;
mod faults;
mod helpers;
mod holds;
mod idempotency;
mod limits;
mod management;
mod openapi;
mod races;
mod revocations;
mod slow_clients;
mod tokens;
mod webhooks;
