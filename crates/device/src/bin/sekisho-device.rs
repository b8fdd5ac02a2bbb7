//! `sekisho-device`: the reference device of device protocol v1 (token, telemetry, state report,
//! signed updates), plus the publisher's `keygen` and `sign`. Wiring only; the work is in the
//! `sekisho_device` library. Exit codes: 0 ok, 1 failure (gateway unreachable, I/O), 2 update
//! rejected, 64 usage.

use clap::{Parser, Subcommand};
use sekisho_device::{
    ClientConfig, Credentials, DeviceClient, DeviceState, LocalState, Manifest, PublicKey,
    SigningKey, UpdateError, sign_payload, wants_update,
};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_FAILED: u8 = 1;
const EXIT_REJECTED: u8 = 2;
const EXIT_USAGE: u8 = 64;

#[derive(Parser, Debug)]
#[command(
    name = "sekisho-device",
    version,
    about = "Sekisho reference device client"
)]
struct Cli {
    /// The gateway's device listener, https://host:port.
    #[arg(long, env = "SEKISHO_GATEWAY", global = true)]
    gateway: Option<String>,
    /// PEM file of the CA(s) to trust for the gateway (instead of the system's roots).
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    /// The field's common auth ID.
    #[arg(long, env = "SEKISHO_AUTH_ID", global = true)]
    auth_id: Option<String>,
    /// The device's secret (prefer the environment variable: arguments are visible to `ps`).
    #[arg(
        long,
        env = "SEKISHO_DEVICE_SECRET",
        global = true,
        hide_env_values = true
    )]
    secret: Option<String>,
    /// The device's IMEI, MAC, serial or user id.
    #[arg(long, env = "SEKISHO_UNIQUE_ID", global = true)]
    unique_id: Option<String>,
    /// Where state.json, device.json and applied artifacts live.
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    /// A trusted manifest public key (SPKI PEM or base64 of 32 bytes); repeat during a rotation.
    #[arg(long = "trust", global = true)]
    trust: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Get a token; prints {"access_token", "device_id", "expires_in"}.
    Token,
    /// Send one telemetry object; prints the gateway's status and commands.
    Send { json: String },
    /// Report firmware version, configuration hash, processes and software (state dir's device.json).
    Report {
        #[arg(long)]
        firmware_version: Option<String>,
        #[arg(long)]
        config_hash: Option<String>,
    },
    /// Check for an update and apply it once.
    Update,
    /// Send telemetry every N seconds; report state; update when a command says so.
    Run {
        #[arg(long, default_value_t = 60)]
        every: u64,
        /// The telemetry object to send (a "seq" counter is added).
        #[arg(long)]
        telemetry: Option<String>,
        /// Stop after this many rounds (default: until interrupted).
        #[arg(long)]
        iterations: Option<u64>,
    },
    /// Publisher: create a signing key (PKCS#8 PEM, 0600) and OUT.pub (SPKI PEM); prints key_id.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Publisher: sign a manifest JSON file; prints the {"payload", "signature", "key_id"} envelope.
    Sign {
        #[arg(long)]
        key: PathBuf,
        manifest: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sekisho-device: cannot start: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    ExitCode::from(runtime.block_on(run(cli)))
}

async fn run(cli: Cli) -> u8 {
    match &cli.command {
        Command::Keygen { out } => return keygen(out),
        Command::Sign { key, manifest } => return sign(key, manifest),
        _ => {}
    }
    let (mut client, trusted) = match setup(&cli) {
        Ok(v) => v,
        Err(problems) => {
            for p in problems {
                eprintln!("sekisho-device: {p}");
            }
            return EXIT_USAGE;
        }
    };
    let outcome = match cli.command {
        Command::Token => client.auth().await.map(|t| {
            print(&json!(t));
            0
        }),
        Command::Send { json } => match serde_json::from_str::<Value>(&json) {
            Ok(body) => client
                .send_telemetry(&body)
                .await
                .map(|(status, commands)| {
                    print(&json!({"status": status, "commands": commands}));
                    0
                }),
            Err(e) => {
                eprintln!("sekisho-device: send: not JSON: {e}");
                return EXIT_USAGE;
            }
        },
        Command::Report {
            firmware_version,
            config_hash,
        } => report(&mut client, firmware_version, config_hash)
            .await
            .map(|_| 0),
        Command::Update => update(&mut client, &trusted).await.map(|_| 0),
        Command::Run {
            every,
            telemetry,
            iterations,
        } => {
            let body = match telemetry
                .as_deref()
                .map(serde_json::from_str::<Value>)
                .transpose()
            {
                Ok(b) => b.unwrap_or_else(|| json!({})),
                Err(e) => {
                    eprintln!("sekisho-device: --telemetry: not JSON: {e}");
                    return EXIT_USAGE;
                }
            };
            run_loop(&mut client, &trusted, every, body, iterations).await
        }
        Command::Keygen { .. } | Command::Sign { .. } => Ok(0),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("sekisho-device: {e} ({})", e.code());
        if e.is_rejection() {
            EXIT_REJECTED
        } else {
            EXIT_FAILED
        }
    })
}

/// The client and trusted keys from the flags; every problem listed.
fn setup(cli: &Cli) -> Result<(DeviceClient, Vec<PublicKey>), Vec<String>> {
    let mut problems = Vec::new();
    let mut need = |v: &Option<String>, flag: &str| {
        v.clone().unwrap_or_else(|| {
            problems.push(format!("--{flag} is required"));
            String::new()
        })
    };
    let gateway = need(&cli.gateway, "gateway");
    let credentials = Credentials {
        auth_id: need(&cli.auth_id, "auth-id"),
        auth_secret: need(&cli.secret, "secret"),
        unique_id: need(&cli.unique_id, "unique-id"),
    };
    let stateful = matches!(
        cli.command,
        Command::Report { .. } | Command::Update | Command::Run { .. }
    );
    if stateful && cli.state_dir.is_none() {
        problems.push("--state-dir is required for this command".into());
    }
    let updates = matches!(cli.command, Command::Update | Command::Run { .. });
    if updates && cli.trust.is_empty() {
        problems.push("at least one --trust key is required to check updates".into());
    }
    let mut trusted = Vec::new();
    for path in &cli.trust {
        match PublicKey::load(path) {
            Ok(k) => trusted.push(k),
            Err(e) => problems.push(format!("--trust {}: {e}", path.display())),
        }
    }
    let mut cfg = ClientConfig::new(
        &gateway,
        credentials,
        cli.state_dir.as_deref().unwrap_or(".".as_ref()),
    );
    if let Some(ca) = &cli.ca {
        match std::fs::read(ca) {
            Ok(pem) => cfg.ca_pem = Some(pem),
            Err(e) => problems.push(format!("--ca {}: {e}", ca.display())),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    DeviceClient::new(cfg)
        .map(|c| (c, trusted))
        .map_err(|e| vec![e.to_string()])
}

async fn report(
    client: &mut DeviceClient,
    firmware_version: Option<String>,
    config_hash: Option<String>,
) -> Result<Vec<Value>, UpdateError> {
    let local = LocalState::load(client.state_dir())?;
    let mut state = DeviceState::from_dir(client.state_dir(), &local)?;
    if firmware_version.is_some() {
        state.firmware_version = firmware_version;
    }
    if config_hash.is_some() {
        state.config_hash = config_hash;
    }
    let commands = client.report_state(&state).await?;
    print(&json!({
        "reported": {"firmware_version": state.firmware_version, "config_hash": state.config_hash},
        "commands": commands,
    }));
    Ok(commands)
}

/// Check and apply once: `true` when an update was applied, `false` when the device is current.
async fn update(client: &mut DeviceClient, trusted: &[PublicKey]) -> Result<bool, UpdateError> {
    let Some(signed) = client.check_update().await? else {
        print(&json!({"update": "current"}));
        return Ok(false);
    };
    let mut local = LocalState::load(client.state_dir())?;
    let applied = client.apply_update(&signed, trusted, &mut local).await?;
    print(&json!({
        "update": "applied", "kind": applied.manifest.kind, "version": applied.manifest.version,
        "sequence": applied.manifest.sequence, "path": applied.path,
        "reported": applied.reported.is_ok(),
    }));
    if let Err(e) = &applied.reported {
        eprintln!("sekisho-device: the update is applied but its report failed: {e}");
    }
    Ok(true)
}

/// Reports the state, checks for an update at start-up, then every `every` seconds sends
/// telemetry; an update command on an answer (telemetry or state) makes the next round check for
/// an update. Commands stay pending on the gateway until done, so a round never repeats without
/// its pause.
async fn run_loop(
    client: &mut DeviceClient,
    trusted: &[PublicKey],
    every: u64,
    body: Value,
    iterations: Option<u64>,
) -> Result<u8, UpdateError> {
    report_quietly(client).await;
    let mut check = true;
    let mut round = 0u64;
    loop {
        round += 1;
        if std::mem::take(&mut check) {
            match update(client, trusted).await {
                Ok(true) => check |= report_quietly(client).await,
                Ok(false) => {}
                Err(e) => eprintln!("sekisho-device: update: {e} ({})", e.code()),
            }
        }
        let mut msg = body.clone();
        if let Some(obj) = msg.as_object_mut() {
            obj.entry("seq").or_insert(json!(round));
        }
        match client.send_telemetry(&msg).await {
            Ok((_, commands)) => check |= wants_update(&commands),
            Err(e) => eprintln!("sekisho-device: telemetry: {e}"),
        }
        if iterations.is_some_and(|n| round >= n) {
            return Ok(0);
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(every)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
    }
}

/// The state report; `true` when its answer asks for an update. Failures are printed, not fatal.
async fn report_quietly(client: &mut DeviceClient) -> bool {
    match report(client, None, None).await {
        Ok(commands) => wants_update(&commands),
        Err(e) => {
            eprintln!("sekisho-device: report: {e}");
            false
        }
    }
}

fn keygen(out: &std::path::Path) -> u8 {
    let result = SigningKey::generate().and_then(|key| {
        key.save(out)?;
        let public = key.public_key();
        let pub_path = out.with_extension("pub");
        std::fs::write(&pub_path, public.to_pem()?)
            .map_err(|e| UpdateError::Key(format!("cannot write {}: {e}", pub_path.display())))?;
        print(&json!({"key_id": public.key_id(), "public_key": public.to_base64(), "public_pem": pub_path}));
        Ok(())
    });
    result.map_or_else(
        |e| {
            eprintln!("sekisho-device: keygen: {e}");
            EXIT_FAILED
        },
        |()| 0,
    )
}

fn sign(key: &std::path::Path, manifest: &std::path::Path) -> u8 {
    let result = SigningKey::load(key).and_then(|key| {
        let text = std::fs::read_to_string(manifest)
            .map_err(|e| UpdateError::Io(format!("cannot read {}: {e}", manifest.display())))?;
        let parsed: Manifest =
            serde_json::from_str(&text).map_err(|e| UpdateError::Malformed(e.to_string()))?;
        parsed.validate()?;
        print(&serde_json::to_value(sign_payload(text.trim(), &key)).unwrap_or_default());
        Ok(())
    });
    result.map_or_else(
        |e| {
            eprintln!("sekisho-device: sign: {e}");
            EXIT_USAGE
        },
        |()| 0,
    )
}

fn print(v: &Value) {
    println!("{v}");
}
