//! `boxoffice-bench pow`: what proof of work at the door costs (issue 18), both sides,
//! with the waiting room's own code (`waitroom::pow::Proofs`): the time to solve a
//! challenge at each difficulty (the `altcha` crate's solver, native, one core: a fan's
//! browser solves the same PBKDF2 work in JavaScript, slower), beside the target of a
//! person paying well under a second; and the server's cost to verify one join's proof
//! (one HMAC of the challenge and one of the key, plus decoding), beside the ceiling
//! of one core's share at 10,000 joins a second.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::SecretString;
use uuid::Uuid;
use waitroom::config::PowConfig;
use waitroom::pow::Proofs;

pub struct Options {
    pub difficulties: Vec<u32>,
    pub cost: u32,
    pub challenges: usize,
    pub verifications: usize,
}

/// A person's browser should pay well under this (issue 18).
const SOLVE_CEILING: Duration = Duration::from_secs(1);
/// Verifying must stay a small share of a core at this join rate.
const JOINS_PER_SECOND: f64 = 10_000.0;

pub fn run(options: &Options) -> anyhow::Result<()> {
    let config = PowConfig { cost: options.cost, challenge_ttl_secs: 300, settings_max_age_ms: 1000 };
    let proofs = Proofs::new(config, &SecretString::from("bench-ticket-secret-0123456789-0123456789"));
    let event = Uuid::new_v4();
    println!(
        "machine: {} cores; PBKDF2-SHA-256 at {} iterations per counter tried; {} challenges per difficulty",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        options.cost,
        options.challenges
    );
    println!("| difficulty | solve p50 / p90 / max, ms (native, one core) | ceiling (a person's browser) |");
    println!("|---|---|---|");
    let mut last_proof = None;
    for &difficulty in &options.difficulties {
        let mut took = Vec::with_capacity(options.challenges);
        for _ in 0..options.challenges {
            let challenge = proofs.challenge(event, difficulty)?;
            let started = Instant::now();
            let solution = altcha::solve_challenge(altcha::SolveChallengeOptions::new(&challenge))?
                .ok_or_else(|| anyhow::anyhow!("no solution within the solver's timeout"))?;
            took.push(started.elapsed());
            last_proof = Some(altcha::Payload { challenge, solution });
        }
        took.sort();
        let at = |share: f64| took[((took.len() - 1) as f64 * share).round() as usize].as_secs_f64() * 1000.0;
        println!(
            "| {difficulty} | {:.1} / {:.1} / {:.1} | {} ms |",
            at(0.5),
            at(0.9),
            at(1.0),
            SOLVE_CEILING.as_millis()
        );
    }
    let proof = STANDARD.encode(serde_json::to_vec(&last_proof.expect("at least one difficulty"))?);
    let started = Instant::now();
    for _ in 0..options.verifications {
        proofs.verify(event, &proof).map_err(|refusal| anyhow::anyhow!("our own proof refused: {refusal:?}"))?;
    }
    let per_join = started.elapsed() / options.verifications as u32;
    let share = per_join.as_secs_f64() * JOINS_PER_SECOND;
    println!(
        "server: {:.1} µs to verify one join's proof ({} verifications); at {JOINS_PER_SECOND} joins/s that is {:.1} % of \
         one core (ceiling 100 %), plus one Redis SET to remember it",
        per_join.as_secs_f64() * 1e6,
        options.verifications,
        share * 100.0
    );
    Ok(())
}
