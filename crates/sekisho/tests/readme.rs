//! The README, run as a new user would: its first command (`sekisho up`, in a fresh directory), then
//! every `sh` block of its tour, in order, verbatim, in one shell — so that the README cannot drift
//! from what the gateway does. Each `# → …` line of the tour is the example output of the command
//! above it: the tour's output must show every one of them, in order (`…` stands for anything).
//!
//! `cargo run --release --bin NAME -- ARGS` in the README runs the binary NAME this test suite built
//! (a `cargo` stand-in first on `PATH`), so the tour needs no second build; everything else — curl,
//! jq, the gateway, the carrier simulator, the cloud stand-in — is the real thing. The tour uses the
//! README's ports (8443, 9443, 7443, 7444) on loopback.

mod common;

use common::TempDir;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const README: &str = include_str!("../../../README.md");

/// The `sh` blocks between the heading `start` and the next heading of the same level.
fn blocks(section: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside_section = false;
    let mut block: Option<String> = None;
    for line in README.lines() {
        if line.starts_with("## ") {
            inside_section = line.trim() == section;
            continue;
        }
        if !inside_section {
            continue;
        }
        match (&mut block, line.trim_start()) {
            (None, l) if l.starts_with("```sh") => block = Some(String::new()),
            (Some(b), "```") => {
                out.push(std::mem::take(b));
                block = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// `true` when `line` holds the pieces of `pattern` between its `…`s, in order.
fn shows(line: &str, pattern: &str) -> bool {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let (line, pattern) = (norm(line), norm(pattern));
    let mut rest = line.as_str();
    for piece in pattern.split('…').filter(|p| !p.is_empty()) {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    true
}

/// A `cargo` stand-in: `cargo run [--release] [--locked] --bin NAME -- ARGS` runs `bin_dir/NAME ARGS`.
fn cargo_shim(dir: &Path, bin_dir: &Path) -> PathBuf {
    let shims = dir.join("shims");
    std::fs::create_dir_all(&shims).unwrap();
    let script = format!(
        r#"#!/bin/sh
# Test stand-in for cargo: runs the binaries the test suite already built.
bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    run|--release|--locked|-q) shift ;;
    --bin) bin="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "cargo stand-in: unexpected argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$bin" ] || {{ echo "cargo stand-in: no --bin" >&2; exit 2; }}
exec "{}/$bin" "$@"
"#,
        bin_dir.display()
    );
    let path = shims.join("cargo");
    std::fs::write(&path, script).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    shims
}

#[test]
fn the_readme_tour_runs_as_written() {
    let bin_dir = Path::new(common::bin()).parent().unwrap().to_owned();
    for needed in ["sekisho-carrier-sim", "sekisho-cloud-sim"] {
        assert!(
            bin_dir.join(needed).is_file(),
            "{needed} is not built in {}: run `cargo build --workspace --bins` first (scripts/test.sh does)",
            bin_dir.display()
        );
    }
    let dir = TempDir::new("readme");
    let shims = cargo_shim(&dir.0, &bin_dir);
    let path = format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // The README's first command, as written, in a fresh directory.
    let first = blocks("## Two commands");
    let up = first
        .first()
        .expect("the README's two commands")
        .trim()
        .to_owned();
    assert!(
        up.contains(" up"),
        "the first command runs the gateway: {up}"
    );
    /// Kills what it holds when the test ends, however it ends (the tour uses fixed ports).
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut gateway = Command::new("sh")
        .args(["-c", &format!("exec {up}")])
        .current_dir(&dir.0)
        .env("PATH", &path)
        .env("SEKISHO_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
        // The README's ports, on loopback only (the default device listener is 0.0.0.0).
        .env("SEKISHO_DEVICE_LISTEN", "127.0.0.1:8443")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(gateway.stdout.take().unwrap()).lines();
    let gateway_err = gateway.stderr.take().unwrap();
    let gateway = KillOnDrop(gateway);
    let mut banner = Vec::new();
    for line in stdout.by_ref() {
        let line = line.unwrap();
        let done = line.contains("console");
        banner.push(line);
        if done {
            break;
        }
    }
    // Keep reading what the gateway prints (and its log), so that it never writes into a closed pipe.
    std::thread::spawn(move || stdout.for_each(drop));
    let gateway_log =
        std::thread::spawn(move || std::io::read_to_string(gateway_err).unwrap_or_default());
    assert!(
        banner.iter().any(|l| l.contains(":8443")),
        "the gateway did not start as the README says: {banner:#?}"
    );

    // The tour, verbatim, in one shell, in its own process group (it starts stand-ins in the background).
    let tour = blocks("## A tour");
    assert!(tour.len() >= 3, "the tour's blocks: {}", tour.len());
    let script = format!("set -euo pipefail\n{}", tour.join("\n"));
    std::fs::write(dir.0.join("tour.sh"), &script).unwrap();
    let mut shell = Command::new("bash");
    shell
        .arg("tour.sh")
        .current_dir(&dir.0)
        .env("PATH", &path)
        .env("PW", common::ADMIN_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut shell, 0);
    let mut child = shell.spawn().unwrap();
    let pgid = child.id();
    let (out_pipe, err_pipe) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || std::io::read_to_string(out_pipe).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(err_pipe).unwrap_or_default());
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{pgid}")])
        .status();
    let _ = child.wait();
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    drop(gateway);
    let log = gateway_log.join().unwrap();
    let status = status.unwrap_or_else(|| panic!("the tour did not finish:\n{out}\n{err}"));
    assert!(
        status.success(),
        "the tour failed ({status}):\n--- output\n{out}\n--- errors\n{err}\n--- the gateway's log\n{log}"
    );

    // Every example output shows, in order.
    let patterns: Vec<&str> = tour
        .iter()
        .flat_map(|b| b.lines())
        .filter_map(|l| l.trim_start().strip_prefix("# → "))
        .collect();
    assert!(!patterns.is_empty(), "the tour shows example outputs");
    let lines: Vec<&str> = out.lines().collect();
    let mut at = 0;
    for p in patterns {
        match lines[at..].iter().position(|l| shows(l, p)) {
            Some(i) => at += i + 1,
            None => panic!(
                "the tour's example output `{p}` does not show (after line {at}):\n{out}\n--- errors\n{err}"
            ),
        }
    }
}

#[test]
fn example_outputs_match_with_ellipses() {
    assert!(shows(
        r#"{"id":"01a2","commands":[]} 202"#,
        r#"{"id":"…","commands":[]} 202"#
    ));
    assert!(!shows(
        r#"{"id":"01a2","commands":[]} 400"#,
        r#"{"id":"…","commands":[]} 202"#
    ));
    assert!(shows("a   b", "a b"));
}
