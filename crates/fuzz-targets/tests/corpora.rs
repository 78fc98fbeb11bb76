//! CI's share of the fuzzing (DECISIONS.md D10): every input the campaigns of
//! `scripts/fuzz` kept (`fuzz/corpus/<target>/`, committed) goes through its target
//! again; a panic fails the test and names the file.

use std::path::Path;

#[test]
fn every_committed_corpus_input_is_parsed_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (name, target) in fuzz_targets::TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fuzz)", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{name}: no input kept; run scripts/fuzz");
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name} panicked on {}", input.display());
        }
    }
}
