//! Gateway integration tests: the real app on a random port, a fresh PostgreSQL
//! database per test, real HTTP.

mod admin;
mod bookings;
mod catalogue;
mod checkins;
mod checkout;
mod errors;
mod events;
mod fan_limits;
mod faults;
mod heartbeat;
mod helpers;
mod holds;
mod idempotency;
mod limits;
mod management;
mod offline;
mod openapi;
mod pages;
mod races;
mod revocations;
mod seat_stream;
mod slow_clients;
mod tickets;
mod tokens;
mod waitlist;
mod webhooks;
