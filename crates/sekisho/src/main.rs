//! The `sekisho` binary: wires the command line to the gateway library. All the work is in
//! `sekisho-app`; this file parses arguments, sets up logging (standard error), prints what a person
//! asked for (standard output, [`output`]), binds ports and waits for signals: SIGINT/SIGTERM stop,
//! SIGHUP reloads the listeners' certificates.
#![forbid(unsafe_code)]

mod output;

use clap::{Parser, Subcommand};
use output::Lines;
use sekisho_app::config::DEFAULT_TOML;
use sekisho_app::{Listeners, init, load_config};
use sekisho_registry::pki;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// jemalloc: measured against glibc's allocator and mimalloc (docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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

/// How `serve` and `up` run.
#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Log format on standard error, overriding [log] format: `text` or `json` (for log collectors).
    #[arg(long, value_parser = ["text", "json"])]
    log_format: Option<String>,
}

/// The names of a new data directory's certificates.
#[derive(clap::Args, Clone)]
struct NameArgs {
    /// A DNS name or IP address the device and admin certificates carry, besides localhost, 127.0.0.1
    /// and ::1 (repeatable). Default: this host's name and its addresses that are not loopback.
    #[arg(long = "name")]
    names: Vec<String>,
}

#[derive(clap::Args, Clone)]
struct InitArgs {
    #[arg(long, env = "SEKISHO_DATA_DIR", default_value = ".sekisho")]
    data_dir: PathBuf,
    /// The first maintainer's user name.
    #[arg(long, env = "SEKISHO_ADMIN_USER", default_value = "admin")]
    admin_user: String,
    #[command(flatten)]
    names: NameArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: default configuration, database key, certificates, first maintainer.
    /// The password comes from SEKISHO_ADMIN_PASSWORD, or is generated and printed once on a terminal
    /// (written to <data-dir>/initial-password, mode 0600, when standard output is not a terminal).
    Init(InitArgs),
    /// Run the gateway. SIGHUP makes the listeners read their certificate and key files again.
    Serve {
        #[command(flatten)]
        serve: ServeArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Initialise the data directory if needed, then run the gateway (the README's first command).
    Up {
        #[command(flatten)]
        serve: ServeArgs,
        #[command(flatten)]
        run: RunArgs,
        #[arg(long, env = "SEKISHO_ADMIN_USER", default_value = "admin")]
        admin_user: String,
        #[command(flatten)]
        names: NameArgs,
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
            output::err(&format!("sekisho: cannot start the runtime: {e}\n"));
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match cli.command {
            Command::Init(a) => {
                logging("info", "text");
                run_init(&a.data_dir, &a.admin_user, &a.names.names).await
            }
            Command::Serve { serve: a, run } => serve(a, run).await,
            Command::Up {
                serve: a,
                run,
                admin_user,
                names,
            } => {
                // A new directory's configuration is the default one: log as it will say.
                if !a.data_dir.join("sekisho.toml").exists() {
                    logging("info", run.log_format.as_deref().unwrap_or("text"));
                }
                match run_init(&a.data_dir, &admin_user, &names.names).await {
                    ExitCode::SUCCESS => serve(a, run).await,
                    code => code,
                }
            }
            Command::Config { what, serve: a } if what == "default" => {
                let _ = a;
                output::out(DEFAULT_TOML);
                ExitCode::SUCCESS
            }
            Command::Config { serve: a, .. } => {
                match load_config(&a.data_dir, a.device_listen, a.admin_listen, a.db_key) {
                    Ok(_) => {
                        output::out("configuration OK\n");
                        ExitCode::SUCCESS
                    }
                    Err(problems) => config_error(&problems),
                }
            }
            Command::Passwd { serve: a, user } => passwd(a, &user).await,
            Command::Openapi { api } => {
                output::out(&format!("{}\n", sekisho_app::openapi_json(&api)));
                ExitCode::SUCCESS
            }
        }
    })
}

/// Logs go to standard error, coloured only when that is a terminal.
fn logging(level: &str, format: &str) {
    let directives = std::env::var("SEKISHO_LOG")
        .ok()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| level.to_owned());
    let mut filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // rustls warns once per handshake about what a client sent wrong (an IP address or an invalid
    // name as SNI): a remote party could grow the log without bound. Its errors still show; a filter
    // that names rustls decides for itself.
    if !directives.contains("rustls")
        && let Ok(d) = "rustls=error".parse()
    {
        filter = filter.add_directive(d);
    }
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if format == "json" {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

fn config_error(problems: &[String]) -> ExitCode {
    let mut text = format!(
        "sekisho: the configuration has {} problem(s):\n",
        problems.len()
    );
    for p in problems {
        text.push_str(&format!("  - {p}\n"));
    }
    output::err(&text);
    ExitCode::from(EXIT_CONFIG)
}

async fn run_init(data_dir: &Path, admin_user: &str, names: &[String]) -> ExitCode {
    let password = std::env::var("SEKISHO_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let names = if names.is_empty() {
        pki::host_names()
    } else {
        names.to_vec()
    };
    // A password shown on anything but a terminal ends up in a service manager's log or a pipe's file.
    let to_file = !std::io::stdout().is_terminal();
    match init::init(data_dir, admin_user, password, &names, to_file).await {
        Ok(r) if r.created => {
            let mut out = Lines::default();
            out.line(format_args!("Initialised {}", data_dir.display()));
            let user = &r.admin_user;
            match (&r.generated_password, &r.password_file) {
                (Some(p), _) => out.line(format_args!(
                    "  maintainer: {user}  password: {p}  (shown once; keep it)"
                )),
                (None, Some(f)) => out.line(format_args!(
                    "  maintainer: {user}  password: in {} (not printed: standard output is not a \
                     terminal; keep it, then delete the file)",
                    f.display()
                )),
                (None, None) => out.line(format_args!(
                    "  maintainer: {user}  password: from SEKISHO_ADMIN_PASSWORD"
                )),
            };
            out.line(format_args!("  certificate names: {}", r.names.join(", ")));
            out.print();
            ExitCode::SUCCESS
        }
        Ok(_) => {
            output::out(&format!("{} is already initialised\n", data_dir.display()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            output::err(&format!("sekisho init: {e:#}\n"));
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

async fn serve(a: ServeArgs, run: RunArgs) -> ExitCode {
    let (mut config, key) =
        match load_config(&a.data_dir, a.device_listen, a.admin_listen, a.db_key) {
            Ok(x) => x,
            Err(problems) => return config_error(&problems),
        };
    if let Some(f) = run.log_format {
        config.log.format = f;
    }
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
    // Before the banner: whoever reads it may send SIGHUP at once, which would otherwise end us.
    let reload_tls = reload_on_sighup();
    let (d, ad) = (
        shown(&config.device.listen, &device),
        shown(&config.admin.listen, &admin),
    );
    let ca = a.data_dir.join("tls/ca.crt");
    let mut out = Lines::default();
    out.line("Sekisho is running.");
    out.line(format_args!(
        "  device API : https://{d}/v1/  (OpenAPI: /v1/openapi.json)"
    ));
    if let Some(addr) = radius.as_ref().and_then(|s| s.local_addr().ok()) {
        out.line(format_args!(
            "  RADIUS     : udp://{addr}  (accounting from the carrier's packet gateway)"
        ));
    }
    out.line(format_args!(
        "  admin API  : https://{ad}/api/v1/  (OpenAPI: /api/v1/openapi.json)"
    ));
    out.line(format_args!(
        "  console    : https://{ad}/console  (English / 日本語)"
    ));
    out.line(format_args!("  CA to trust: {}", ca.display()));
    let (dn, an) = (
        cert_names(&config.device.cert),
        cert_names(&config.admin.cert),
    );
    if dn == an {
        out.line(format_args!(
            "  names      : {dn}  (device and admin certificates)"
        ));
    } else {
        out.line(format_args!("  names      : {dn}  (device certificate)"));
        out.line(format_args!("               {an}  (admin certificate)"));
    }
    out.line(format_args!(
        "  log in     : curl --cacert {} -H 'content-type: application/json' -d '{{\"username\":\"admin\",\"password\":\"…\"}}' https://{ad}/api/v1/login",
        ca.display(),
    ));
    // A reader that closed our standard output does not stop the gateway: it serves on, logging to
    // standard error.
    out.print();
    match sekisho_app::run(
        Listeners {
            device,
            admin,
            radius,
            reload_tls,
        },
        config,
        key,
        std::sync::Arc::new(sekisho_core::SystemClock),
        shutdown_signal(),
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::err(&format!("sekisho: {e:#}\n"));
            ExitCode::FAILURE
        }
    }
}

/// The address to print: the host name when the configuration gave one, localhost for a wildcard
/// bind, else the bound address; always with the bound port (`:0` picks one).
fn shown(configured: &str, l: &tokio::net::TcpListener) -> String {
    let Ok(a) = l.local_addr() else {
        return configured.to_owned();
    };
    let host = configured.rsplit_once(':').map_or("", |(h, _)| h);
    if configured.parse::<std::net::SocketAddr>().is_err() && !host.is_empty() {
        format!("{host}:{}", a.port())
    } else if a.ip().is_unspecified() {
        format!("localhost:{}", a.port())
    } else {
        a.to_string()
    }
}

/// The names a certificate file carries, for the banner.
fn cert_names(path: &Path) -> String {
    match pki::cert_names(path) {
        Ok(n) if n.is_empty() => "(none)".into(),
        Ok(n) => n.join(", "),
        Err(e) => format!("(unreadable: {e})"),
    }
}

/// A request to reload the listeners' certificates on every SIGHUP (`kill -HUP`, `systemctl reload`).
fn reload_on_sighup() -> Option<tokio::sync::watch::Receiver<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: certificates reload only on restart");
                return None;
            }
        };
        let (tx, rx) = tokio::sync::watch::channel(());
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the listeners' certificates");
                if tx.send(()).is_err() {
                    return;
                }
            }
        });
        Some(rx)
    }
    #[cfg(not(unix))]
    None
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
        .unwrap_or_else(sekisho_registry::crypto::new_secret);
    match sekisho_app::init::set_password(&config, &key, user, &password).await {
        Ok(()) if given.is_some() => {
            output::out(&format!("password of {user} changed\n"));
            ExitCode::SUCCESS
        }
        Ok(()) => {
            output::out(&format!("password of {user}: {password}  (shown once)\n"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            output::err(&format!("sekisho passwd: {e:#}\n"));
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
