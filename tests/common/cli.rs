//! Running the `magprior` binary as a user does, shared by the CLI tests: temporary directories,
//! the one-line-error contract, "nothing half-written", and a Ctrl-C stop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_magprior"))
}

/// A fresh temporary directory `magprior-<prefix>-<name>-<pid>`.
pub fn tmpdir(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("magprior-{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run magprior")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// Exit code 2, exactly one `error:` line mentioning every `needle`, no panic or backtrace.
pub fn assert_user_error(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {e}");
    assert!(!e.contains("panicked") && !e.contains("backtrace"), "{e}");
    assert_eq!(
        e.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{e}"
    );
    for n in needles {
        assert!(e.contains(n), "expected '{n}' in: {e}");
    }
}

/// No output directory `out` and no staging leftovers beside it in `dir`.
pub fn assert_nothing_written(dir: &Path, out: &str) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n == out || n.contains(".partial")),
        "left behind: {names:?}"
    );
}

/// Starts a long run, sends SIGINT once its first progress line appears, and checks that it
/// exits successfully with `out/metrics.json` saying "interrupted" and `out/<kept>` written.
#[cfg(unix)]
pub fn interrupt_and_check(args: &[&str], out: &Path, kept: &str) {
    let mut child = bin()
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap(); // the first progress line: the loop is running
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status:?}");
    let metrics = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    assert!(metrics.contains("interrupted"), "{metrics}");
    assert!(out.join(kept).exists(), "missing {kept}");
}
