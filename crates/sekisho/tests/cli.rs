//! The command line: init is complete and idempotent, a bad configuration lists every problem (with its
//! line) and exits 64 before any port opens, the documented default configuration is what runs; the
//! banner on standard output and logs on standard error; a closed standard output; where the first
//! password goes. Certificate names and rotation are in `certificates.rs`.

mod common;

use common::TempDir;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn bad_configuration_lists_every_problem_and_exits_64() {
    let dir = TempDir::new("badcfg");
    common::init(&dir.0);
    common::configure(
        &dir.0,
        &[
            ("device", "max_connections", 0.into()),
            ("store", "sync", "sometimes".into()),
            ("cloud", "batch_max", 0.into()),
            ("admin", "cert", "missing.crt".into()),
        ],
    );
    let out = Command::new(common::bin())
        .args(["serve", "--data-dir"])
        .arg(&dir.0)
        .args(["--device-listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "device.listen",
        "device.max_connections",
        "store.sync",
        "cloud.batch_max",
        "admin.cert",
        "5 problem(s)",
    ] {
        assert!(err.contains(needle), "{needle} missing from:\n{err}");
    }
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "nothing started"
    );

    // An unknown key is named.
    std::fs::write(
        dir.0.join("sekisho.toml"),
        "[device]\nlisten = \"127.0.0.1:0\"\nlistne = 1\n",
    )
    .unwrap();
    let out = Command::new(common::bin())
        .args(["config", "check", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listne"));

    // A wrong database key is refused before serving.
    let good = TempDir::new("badkey");
    common::init(&good.0);
    let out = Command::new(common::bin())
        .args(["serve", "--data-dir"])
        .arg(&good.0)
        .args([
            "--device-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("SEKISHO_DB_KEY", "00".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("database key does not open"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn init_is_complete_idempotent_and_generates_a_password_when_none_is_given() {
    let dir = TempDir::new("init");
    let out = Command::new(common::bin())
        .args(["init", "--data-dir"])
        .arg(&dir.0)
        .env_remove("SEKISHO_ADMIN_PASSWORD")
        .output()
        .unwrap();
    assert!(out.status.success());
    // Standard output is a pipe here, not a terminal: the password goes to a 0600 file, not the pipe.
    let text = String::from_utf8_lossy(&out.stdout);
    let file = dir.0.join("initial-password");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(password.len() >= 12, "{password:?}");
    assert!(
        text.contains(&file.display().to_string()) && !text.contains(&password),
        "{text}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&password));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    for f in [
        "sekisho.toml",
        "db.key",
        "sekisho.db",
        "tls/ca.crt",
        "tls/device.crt",
        "tls/device.key",
        "tls/admin.crt",
        "tls/device-ca.crt",
    ] {
        assert!(dir.0.join(f).exists(), "{f} missing");
    }
    let key = std::fs::read(dir.0.join("db.key")).unwrap();
    let again = Command::new(common::bin())
        .args(["init", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already initialised"));
    assert_eq!(
        std::fs::read(dir.0.join("db.key")).unwrap(),
        key,
        "a second init changes nothing"
    );
    let ok = Command::new(common::bin())
        .args(["config", "check", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let default = Command::new(common::bin())
        .args(["config", "default"])
        .output()
        .unwrap();
    assert_eq!(
        default.stdout,
        std::fs::read(dir.0.join("sekisho.toml")).unwrap()
    );

    // A too-short password from the environment is refused, and nothing is half-created.
    let short = TempDir::new("init-short");
    let out = Command::new(common::bin())
        .args(["init", "--data-dir"])
        .arg(short.0.join("d"))
        .env("SEKISHO_ADMIN_PASSWORD", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(!short.0.join("d/sekisho.toml").exists());
}

#[tokio::test]
async fn passwd_resets_a_password_and_ends_sessions() {
    let dir = TempDir::new("passwd");
    common::init(&dir.0);
    let out = Command::new(common::bin())
        .args(["passwd", "--data-dir"])
        .arg(&dir.0)
        .env("SEKISHO_NEW_PASSWORD", "a-brand-new-password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gw = common::Gateway::start_in(&dir.0);
    assert_eq!(
        gw.login("admin", common::ADMIN_PASSWORD).await.status(),
        401
    );
    assert_eq!(
        gw.login("admin", "a-brand-new-password").await.status(),
        200
    );
}

#[test]
fn the_published_openapi_documents_are_current() {
    for api in ["device", "admin"] {
        let out = Command::new(common::bin())
            .args(["openapi", api])
            .output()
            .unwrap();
        assert!(out.status.success());
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../docs/openapi/{api}.json"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed.trim(),
            String::from_utf8_lossy(&out.stdout).trim(),
            "{} is stale: run `sekisho openapi {api} > docs/openapi/{api}.json`",
            path.display()
        );
    }
}

#[tokio::test]
async fn the_first_password_is_shown_on_a_terminal_and_the_file_one_logs_in() {
    // On a terminal (a pseudo-terminal from util-linux's `script`) the password is shown, no file.
    let tty = TempDir::new("init-tty");
    let cmd = format!("{} init --data-dir {}", common::bin(), tty.0.display());
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("SEKISHO_ADMIN_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("password: ") && text.contains("shown once"),
        "{text}"
    );
    assert!(!tty.0.join("initial-password").exists());

    // Through a pipe the password is in the file, and it is the maintainer's.
    let dir = TempDir::new("init-file");
    let out = Command::new(common::bin())
        .args(["init", "--data-dir"])
        .arg(&dir.0)
        .env_remove("SEKISHO_ADMIN_PASSWORD")
        .output()
        .unwrap();
    assert!(out.status.success());
    let password = std::fs::read_to_string(dir.0.join("initial-password")).unwrap();
    let gw = common::Gateway::start_in(&dir.0);
    assert_eq!(gw.login("admin", password.trim()).await.status(), 200);
    assert!(!gw.log_text().contains(password.trim()));
}

#[test]
fn every_configuration_problem_is_listed_with_its_line() {
    let dir = TempDir::new("cfglines");
    common::init(&dir.0);
    let file = dir.0.join("sekisho.toml");
    std::fs::write(
        &file,
        "[device]\n\
         listen = \"127.0.0.1:0\"\n\
         max_connections = \"many\"\n\
         listne = 1\n\
         [store]\n\
         sync = \"sometimes\"\n\
         [cloud]\n\
         batch_max = 0\n\
         timeout_secs = \"forever\"\n\
         [admin]\n\
         session_ttl_secs = \"8h\"\n\
         listen = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = Command::new(common::bin())
        .args(["config", "check", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    let f = file.display();
    let want = [
        "the configuration has 5 problem(s):".to_owned(),
        format!("  - {f}:3: device.max_connections: invalid type: string \"many\""),
        format!("  - {f}:4: device.listne: unknown field `listne`"),
        format!("  - {f}:6: store.sync: 'sometimes' is neither 'full' nor 'normal'"),
        format!("  - {f}:8: cloud.batch_max must be greater than 0"),
        format!("  - {f}:9: cloud.timeout_secs: 'forever' is not a duration"),
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), want.len(), "{err}");
    for (line, want) in lines.iter().zip(&want) {
        assert!(
            line.contains(want.as_str()),
            "{want:?} missing from:\n{err}"
        );
    }

    // The durations and the rest of a file with no problem are taken: it serves.
    std::fs::write(
        &file,
        "[admin]\nsession_ttl_secs = \"8h\"\n[cloud]\ntimeout_secs = \"30s\"\nbackoff_max_ms = \"1m\"\n",
    )
    .unwrap();
    let ok = Command::new(common::bin())
        .args(["config", "check", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[tokio::test]
async fn listen_addresses_take_host_names_and_refuse_names_that_do_not_resolve() {
    let dir = TempDir::new("hostnames");
    common::init(&dir.0);
    let gw = common::Gateway::spawn(&dir.0, "localhost:0", "localhost:0");
    assert!(gw.device.starts_with("localhost:"), "{}", gw.device);
    assert!(gw.admin.starts_with("localhost:"), "{}", gw.admin);
    let r = gw
        .http
        .get(gw.durl("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        gw.login("admin", common::ADMIN_PASSWORD).await.status(),
        200
    );
    drop(gw);

    let out = Command::new(common::bin())
        .args(["serve", "--data-dir"])
        .arg(&dir.0)
        .args([
            "--device-listen",
            "nosuch.invalid:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("device.listen: 'nosuch.invalid' does not resolve"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

/// Starts `serve` with standard output to `stdout`; returns it with what it wrote on standard error up
/// to its log line that it serves (waiting 30 s at most for that, then failing).
fn start_serve(dir: &Path, stdout: Stdio, extra: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(common::bin())
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args([
            "--device-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env_remove("SEKISHO_LOG")
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut err = String::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        err.push_str(&line);
        err.push('\n');
        if line.contains("sekisho gateway serving") {
            return (child, err);
        }
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    panic!("no 'serving' log line on stderr ({status}):\n{err}");
}

/// Standard output and error of `serve` until it logged that it serves; then it is stopped.
fn serve_output(dir: &Path, extra: &[&str]) -> (String, String) {
    let (mut child, err) = start_serve(dir, Stdio::piped(), extra);
    child.kill().unwrap();
    child.wait().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    (out, err)
}

#[test]
fn the_banner_is_on_stdout_and_logs_on_stderr_without_colour_or_as_json() {
    let dir = TempDir::new("streams");
    common::init(&dir.0);
    let (out, err) = serve_output(&dir.0, &[]);
    assert!(out.starts_with("Sekisho is running.\n"), "{out}");
    for line in out.lines().skip(1) {
        let label = line.trim_start().split(':').next().unwrap_or("");
        assert!(
            [
                "device API ",
                "admin API  ",
                "console    ",
                "CA to trust",
                "names      ",
                "log in     "
            ]
            .contains(&label),
            "not a banner line on stdout: {line:?}"
        );
    }
    assert!(err.contains("sekisho gateway serving"), "{err}");
    assert!(
        !err.contains('\x1b'),
        "colour codes in a log that is not a terminal: {err:?}"
    );
    assert!(!err.contains("Sekisho is running."));

    let (out, err) = serve_output(&dir.0, &["--log-format", "json"]);
    assert!(out.starts_with("Sekisho is running.\n"), "{out}");
    let events: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["message"] == "sekisho gateway serving"),
        "{err}"
    );
}

#[tokio::test]
async fn a_closed_stdout_ends_printing_commands_quietly() {
    let dir = TempDir::new("epipe");
    common::init(&dir.0);
    let commands: [&[&str]; 5] = [
        &["openapi", "admin"],
        &["openapi", "device"],
        &["config", "default"],
        &["config", "check", "--data-dir"],
        &["init", "--data-dir"],
    ];
    for args in commands {
        // The reading end is closed before the command starts: its first write meets a broken pipe.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = Command::new(common::bin());
        cmd.args(args);
        if args.last() == Some(&"--data-dir") {
            cmd.arg(&dir.0);
        }
        let out = cmd.stdout(writer).stderr(Stdio::piped()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }

    // The gateway whose banner meets a closed pipe serves on (its logs are on standard error).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let (mut child, err) = start_serve(&dir.0, writer.into(), &[]);
    let admin = err
        .split_whitespace()
        .find_map(|w| w.strip_prefix("admin="))
        .unwrap()
        .to_owned();
    let client = common::client(&dir.0, None);
    let r = client
        .get(format!("https://{admin}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(child.try_wait().unwrap().is_none(), "the gateway stopped");
    child.kill().unwrap();
    child.wait().unwrap();

    // `sekisho openapi admin | head -c 100`: the reader leaves after 100 bytes of a larger document.
    let mut child = Command::new(common::bin())
        .args(["openapi", "admin"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
