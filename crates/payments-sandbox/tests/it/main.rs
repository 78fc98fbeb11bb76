//! The sandbox as a real server on a free port, called over HTTP.

mod api;
mod official_stripe;
mod page;
mod support;
mod webhooks;
