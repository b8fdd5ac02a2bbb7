//! The `sekisho` binary: wires the command line to the gateway library. All the work is in
//! `sekisho-gateway`; this file parses arguments, sets up logging, binds ports and waits for a signal.

use clap::{Parser, Subcommand};
use sekisho_gateway::config::DEFAULT_TOML;
use sekisho_gateway::{Listeners, init, load_config};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code for bad configuration or usage (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(name = "sekisho", version, about = "Sekisho IoT secure gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// The data directory (configuration, database, key, certificates).
    #[arg(long, env = "SEKISHO_DATA_DIR", default_value = ".sekisho")]
    data_dir: PathBuf,
    /// Overrides [device] listen.
    #[arg(long, env = "SEKISHO_DEVICE_LISTEN")]
    device_listen: Option<String>,
    /// Overrides [admin] listen.
    #[arg(long, env = "SEKISHO_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// The database key (64 hex digits), instead of [store] key_file.
    #[arg(long, env = "SEKISHO_DB_KEY", hide_env_values = true)]
    db_key: Option<String>,
}

#[derive(clap::Args, Clone)]
struct InitArgs {
    #[arg(long, env = "SEKISHO_DATA_DIR", default_value = ".sekisho")]
    data_dir: PathBuf,
    /// The first maintainer's user name.
    #[arg(long, env = "SEKISHO_ADMIN_USER", default_value = "admin")]
    admin_user: String,
    /// Extra DNS names or IP addresses for the server certificates (besides localhost, 127.0.0.1, ::1).
    #[arg(long = "name")]
    names: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: default configuration, database key, certificates, first maintainer.
    /// The password comes from SEKISHO_ADMIN_PASSWORD, or is generated and printed once.
    Init(InitArgs),
    /// Run the gateway.
    Serve(ServeArgs),
    /// Initialise the data directory if needed, then run the gateway (the README's first command).
    Up {
        #[command(flatten)]
        serve: ServeArgs,
        #[arg(long, env = "SEKISHO_ADMIN_USER", default_value = "admin")]
        admin_user: String,
    },
    /// Configuration: `default` prints the documented default; `check` validates a data directory's.
    Config {
        #[arg(value_parser = ["default", "check"])]
        what: String,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Print an OpenAPI document: `device` (device protocol) or `admin` (admin API).
    Openapi {
        #[arg(value_parser = ["device", "admin"])]
        api: String,
    },
    /// Set a user's password (SEKISHO_NEW_PASSWORD, or a generated one printed once).
    Passwd {
        #[command(flatten)]
        serve: ServeArgs,
        #[arg(long, default_value = "admin")]
        user: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sekisho: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match cli.command {
            Command::Init(a) => {
                logging("info", "text");
                run_init(&a.data_dir, &a.admin_user, &a.names).await
            }
            Command::Serve(a) => serve(a).await,
            Command::Up {
                serve: a,
                admin_user,
            } => {
                logging("info", "text");
                match run_init(&a.data_dir, &admin_user, &[]).await {
                    ExitCode::SUCCESS => serve(a).await,
                    code => code,
                }
            }
            Command::Config { what, serve: a } if what == "default" => {
                let _ = a;
                print!("{DEFAULT_TOML}");
                ExitCode::SUCCESS
            }
            Command::Config { serve: a, .. } => {
                match load_config(&a.data_dir, a.device_listen, a.admin_listen, a.db_key) {
                    Ok(_) => {
                        println!("configuration OK");
                        ExitCode::SUCCESS
                    }
                    Err(problems) => config_error(&problems),
                }
            }
            Command::Passwd { serve: a, user } => passwd(a, &user).await,
            Command::Openapi { api } => {
                println!("{}", sekisho_gateway::openapi_json(&api));
                ExitCode::SUCCESS
            }
        }
    })
}

fn logging(level: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEKISHO_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if format == "json" {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

fn config_error(problems: &[String]) -> ExitCode {
    eprintln!(
        "sekisho: the configuration has {} problem(s):",
        problems.len()
    );
    for p in problems {
        eprintln!("  - {p}");
    }
    ExitCode::from(EXIT_CONFIG)
}

async fn run_init(data_dir: &Path, admin_user: &str, names: &[String]) -> ExitCode {
    let password = std::env::var("SEKISHO_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    match init::init(data_dir, admin_user, password, names).await {
        Ok(r) if r.created => {
            println!("Initialised {}", data_dir.display());
            match r.generated_password {
                Some(p) => println!(
                    "  maintainer: {}  password: {p}  (shown once; keep it)",
                    r.admin_user
                ),
                None => println!(
                    "  maintainer: {}  password: from SEKISHO_ADMIN_PASSWORD",
                    r.admin_user
                ),
            }
            ExitCode::SUCCESS
        }
        Ok(_) => {
            println!("{} is already initialised", data_dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sekisho init: {e:#}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

async fn serve(a: ServeArgs) -> ExitCode {
    let (config, key) = match load_config(&a.data_dir, a.device_listen, a.admin_listen, a.db_key) {
        Ok(x) => x,
        Err(problems) => return config_error(&problems),
    };
    logging(&config.log.level, &config.log.format);
    let bind = |addr: &str| {
        let addr = addr.to_owned();
        async move {
            tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))
        }
    };
    let (device, admin) = match (
        bind(&config.device.listen).await,
        bind(&config.admin.listen).await,
    ) {
        (Ok(d), Ok(a)) => (d, a),
        (d, a) => {
            return config_error(&[d.err(), a.err()].into_iter().flatten().collect::<Vec<_>>());
        }
    };
    let radius = match config.carrier.radius.listen.as_str() {
        "" => None,
        addr => match tokio::net::UdpSocket::bind(addr).await {
            Ok(s) => Some(s),
            Err(e) => return config_error(&[format!("cannot listen on udp {addr}: {e}")]),
        },
    };
    let ca = a.data_dir.join("tls/ca.crt");
    println!("Sekisho is running.");
    println!(
        "  device API : https://{}/v1/  (OpenAPI: /v1/openapi.json)",
        shown(&device)
    );
    if let Some(addr) = radius.as_ref().and_then(|s| s.local_addr().ok()) {
        println!("  RADIUS     : udp://{addr}  (accounting from the carrier's packet gateway)");
    }
    println!(
        "  admin API  : https://{}/api/v1/  (OpenAPI: /api/v1/openapi.json)",
        shown(&admin)
    );
    println!(
        "  console    : https://{}/console  (English / 日本語)",
        shown(&admin)
    );
    println!("  CA to trust: {}", ca.display());
    println!(
        "  log in     : curl --cacert {} -H 'content-type: application/json' -d '{{\"username\":\"admin\",\"password\":\"…\"}}' https://{}/api/v1/login",
        ca.display(),
        shown(&admin)
    );
    match sekisho_gateway::run(
        Listeners {
            device,
            admin,
            radius,
        },
        config,
        key,
        shutdown_signal(),
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sekisho: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The address to print: a wildcard bind is reachable as localhost.
fn shown(l: &tokio::net::TcpListener) -> String {
    match l.local_addr() {
        Ok(a) if a.ip().is_unspecified() => format!("localhost:{}", a.port()),
        Ok(a) => a.to_string(),
        Err(_) => "?".into(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn passwd(a: ServeArgs, user: &str) -> ExitCode {
    let (config, key) = match load_config(&a.data_dir, a.device_listen, a.admin_listen, a.db_key) {
        Ok(x) => x,
        Err(problems) => return config_error(&problems),
    };
    let given = std::env::var("SEKISHO_NEW_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let password = given
        .clone()
        .unwrap_or_else(sekisho_gateway::crypto::new_secret);
    match sekisho_gateway::init::set_password(&config, &key, user, &password).await {
        Ok(()) if given.is_some() => {
            println!("password of {user} changed");
            ExitCode::SUCCESS
        }
        Ok(()) => {
            println!("password of {user}: {password}  (shown once)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sekisho passwd: {e:#}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
