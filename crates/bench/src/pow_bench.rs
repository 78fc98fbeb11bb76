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

/// What `scripts/bench-pow-browser` hands the browser and gets back.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct BrowserRound {
    pub difficulty: u32,
    pub challenges: Vec<altcha::Challenge>,
    /// Filled by the browser: milliseconds per solve, and each proof as a join sends it.
    #[serde(default)]
    pub solve_ms: Vec<f64>,
    #[serde(default)]
    pub proofs: Vec<String>,
}

/// The event every bench challenge names.
const EVENT: Uuid = Uuid::from_u128(0x0b0c_0ffe_0000_4000_8000_0000_0000_0018);

fn proofs(cost: u32) -> Proofs {
    let config = PowConfig { cost, challenge_ttl_secs: 3600, settings_max_age_ms: 1000 };
    Proofs::new(config, &SecretString::from("bench-ticket-secret-0123456789-0123456789"))
}

/// Writes `challenges` fresh challenges per difficulty for the browser to solve.
pub fn write_browser_challenges(options: &Options, path: &std::path::Path) -> anyhow::Result<()> {
    let proofs = proofs(options.cost);
    let rounds = options
        .difficulties
        .iter()
        .map(|&difficulty| {
            let challenges =
                (0..options.challenges).map(|_| proofs.challenge(EVENT, difficulty)).collect::<Result<_, _>>()?;
            Ok(BrowserRound { difficulty, challenges, solve_ms: vec![], proofs: vec![] })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::write(path, serde_json::to_vec(&rounds)?)?;
    Ok(())
}

/// Prints the browser's solve times beside the ceiling, and checks every proof it made
/// with the server's own verification (the official JavaScript solver against our
/// Rust verifier: the two implementations agree, or this fails).
pub fn report_browser_solutions(options: &Options, path: &std::path::Path) -> anyhow::Result<()> {
    let proofs = proofs(options.cost);
    let rounds: Vec<BrowserRound> = serde_json::from_slice(&std::fs::read(path)?)?;
    println!("| difficulty | browser solve p50 / p90 / max, ms | ceiling (a person's browser) | proofs the server accepted |");
    println!("|---|---|---|---|");
    let mut refused = 0;
    for round in &rounds {
        let mut took = round.solve_ms.clone();
        took.sort_by(f64::total_cmp);
        anyhow::ensure!(!took.is_empty(), "the browser solved nothing at difficulty {}", round.difficulty);
        let at = |share: f64| took[((took.len() - 1) as f64 * share).round() as usize];
        let accepted = round.proofs.iter().filter(|proof| proofs.verify(EVENT, proof).is_ok()).count();
        refused += round.proofs.len() - accepted;
        println!(
            "| {} | {:.1} / {:.1} / {:.1} | {} ms | {accepted} of {} |",
            round.difficulty,
            at(0.5),
            at(0.9),
            at(1.0),
            SOLVE_CEILING.as_millis(),
            round.proofs.len()
        );
    }
    anyhow::ensure!(refused == 0, "{refused} of the browser's proofs were refused by the server");
    Ok(())
}

/// A person's browser should pay well under this (issue 18).
const SOLVE_CEILING: Duration = Duration::from_secs(1);
/// Verifying must stay a small share of a core at this join rate.
const JOINS_PER_SECOND: f64 = 10_000.0;

pub fn run(options: &Options) -> anyhow::Result<()> {
    let proofs = proofs(options.cost);
    let event = EVENT;
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
