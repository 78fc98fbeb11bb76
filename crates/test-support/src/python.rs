//! The Python scripts that check our formats with other people's libraries (DECISIONS.md
//! D11), run in the virtualenv `scripts/ensure-python` makes (`target/python`;
//! `scripts/test` runs it first).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// What a script said: its exit code (None: killed, e.g. by the one-minute bound) and
/// its standard output, trimmed.
pub struct Said {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `script` with `input` on its standard input, for at most a minute (a hung
/// interpreter fails the test rather than hanging it). Panics, naming the fix, when the
/// virtualenv is missing.
pub fn run(script: &Path, input: &str) -> Said {
    run_with_args(script, &[], input)
}

/// [`run`], with command-line arguments.
pub fn run_with_args(script: &Path, args: &[&str], input: &str) -> Said {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/python/bin/python");
    assert!(
        python.exists(),
        "no Python virtualenv at {}: run scripts/ensure-python (scripts/test does) to install \
         scripts/python-requirements.txt",
        python.display()
    );
    let mut child = Command::new("timeout")
        .arg("60")
        .arg(&python)
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("timeout and python start");
    child.stdin.take().expect("a piped stdin").write_all(input.as_bytes()).expect("the script reads its input");
    let output = child.wait_with_output().expect("the script ends");
    Said {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
