//! The `edgepurge` command line. Commands act on the same store as a running server.

mod function;
mod log;
mod purge;
mod rule;
mod serve;
mod simulate;

use crate::app::{Admin, AdminError};
use crate::clock::Clock;
use crate::config::{self, Config};
use crate::store::{SqliteStore, Store};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "edgepurge",
    version,
    about = "Keeps CDN caches fresh: bucket change events in, batched durable CDN purges out.",
    after_help = "Start with `edgepurge serve` (embedded SQLite, loopback listener). \
                  See edgepurge.example.toml for every setting."
)]
pub struct Cli {
    /// Config file (TOML). Without one, defaults apply: no providers, no rules.
    #[arg(long, short = 'c', global = true, env = "EDGEPURGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// SQLite store file, overriding [store] path (default edgepurge.db) and any PostgreSQL
    /// url_env / url_file.
    #[arg(long, global = true, env = "EDGEPURGE_DB")]
    pub db: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"], env = "EDGEPURGE_LOG_FORMAT")]
    pub log_format: String,
    /// Log filter, e.g. `info`, `debug`, `edgepurge=debug`.
    #[arg(long, global = true, default_value = "info", env = "EDGEPURGE_LOG")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: webhook, queue and purgers.
    Serve(serve::ServeArgs),
    /// Check a config file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Show what an event would purge, without purging.
    Simulate(simulate::SimulateArgs),
    /// Add, list, show, delete, enable or disable rules.
    Rule {
        #[command(subcommand)]
        command: rule::RuleCommand,
    },
    /// Read the purge log.
    Log(log::LogArgs),
    /// Purge URLs or directories by hand through a provider account.
    Purge(purge::PurgeArgs),
    /// Re-queue dead letters (purges that were given up).
    Retry(RetryArgs),
    /// Queue depth per lane.
    Status(StatusArgs),
    /// Purge what one event body asks for, now, without store or server (function mode).
    Handle(function::HandleArgs),
    /// Run as a Tencent SCF or AWS Lambda custom-runtime function (function mode).
    Function(function::FunctionArgs),
    /// Write a function zip for Tencent SCF or AWS Lambda.
    Package(function::PackageArgs),
    /// Print a shell completion script, e.g. `edgepurge completions bash >
    /// /etc/bash_completion.d/edgepurge`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Create the store or bring its schema up to date (SQLite file or PostgreSQL database),
    /// then exit. Run it once before starting upgraded nodes of a cluster.
    Migrate,
    /// Print the manual page (roff), e.g. `edgepurge man > /usr/local/share/man/man1/edgepurge.1`.
    Man,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate the config (and the rules stored beside it).
    Check,
}

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// Only this provider account's lane.
    #[arg(long)]
    pub provider: Option<String>,
    /// Only batches holding a purge of this rule.
    #[arg(long)]
    pub rule: Option<String>,
    /// Print `{"requeued": N}` instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// One JSON object: `{"lanes": [...], "sources": [...] | null, "sources_error": ...}`.
    #[arg(long)]
    pub json: bool,
    /// Where the running server listens, for its sources (default: the config's
    /// `server.listen`).
    #[arg(long, value_name = "HOST:PORT")]
    pub server: Option<std::net::SocketAddr>,
}

/// An error to report with its exit code: 2 for bad input or usage, 1 for failures.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: 1,
            error: e.into(),
        }
    }
}

pub fn input_error(msg: impl std::fmt::Display) -> Failure {
    Failure {
        code: 2,
        error: anyhow::anyhow!("{msg}"),
    }
}

/// The one mapping from the application's errors to exit codes.
pub fn admin_failure(e: AdminError) -> Failure {
    Failure {
        code: e.exit_code(),
        error: e.into(),
    }
}

pub type CliResult = Result<(), Failure>;

pub fn main() -> ExitCode {
    let cli = Cli::parse_from(function::bootstrap_args(std::env::args_os().collect()));
    init_tracing(&cli.log_format, &cli.log_level);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn init_tracing(format: &str, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> CliResult {
    let ctx = Ctx {
        config_path: cli.config.clone(),
        db: cli.db.clone(),
    };
    match cli.command {
        Command::Serve(args) => serve::serve(&ctx, args).await,
        Command::Config {
            command: ConfigCommand::Check,
        } => serve::check(&ctx).await,
        Command::Simulate(args) => simulate::run(&ctx, args).await,
        Command::Rule { command } => rule::run(&ctx, command).await,
        Command::Log(args) => log::run(&ctx, args).await,
        Command::Purge(args) => purge::run(&ctx, args).await,
        Command::Retry(args) => retry(&ctx, args).await,
        Command::Status(args) => status(&ctx, args).await,
        Command::Migrate => migrate(&ctx).await,
        Command::Handle(args) => function::handle(&ctx, args).await,
        Command::Function(args) => function::function(&ctx, args).await,
        Command::Package(args) => function::package(&ctx, args).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "edgepurge", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            use clap::CommandFactory;
            let mut out: Vec<u8> = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            // Each subcommand's page follows, so `man` shows every command's options.
            for sub in Cli::command().get_subcommands() {
                // A one-shot command: the few names live until it exits.
                let name: &'static str =
                    Box::leak(format!("edgepurge-{}", sub.get_name()).into_boxed_str());
                let sub = sub.clone().name(name);
                clap_mangen::Man::new(sub).render(&mut out)?;
            }
            std::io::Write::write_all(&mut std::io::stdout(), &out)?;
            Ok(())
        }
    }
}

/// What every command needs to find the config and the store.
pub struct Ctx {
    pub config_path: Option<PathBuf>,
    pub db: Option<PathBuf>,
}

impl Ctx {
    pub async fn config(&self) -> Result<Config, Failure> {
        let mut cfg = config::load_or_default(self.config_path.as_deref())
            .await
            .map_err(|e| Failure {
                code: 2,
                error: anyhow::anyhow!("invalid configuration:\n{e}"),
            })?;
        if let Some(db) = &self.db {
            cfg.store.path = db.clone();
            cfg.store.url = None;
        }
        Ok(cfg)
    }

    /// Opens the store, which must exist already. Commands leave schema upgrades to the
    /// server or `edgepurge migrate` (an older server may still be running on it).
    pub async fn existing_store(&self, cfg: &Config) -> Result<Arc<dyn Store>, Failure> {
        crate::service::open_configured(&cfg.store, false, false)
            .await
            .map_err(|e| admin_failure(e.into()))
    }

    /// Opens the store, creating it if needed (but not upgrading an older one).
    pub async fn store(&self, cfg: &Config) -> Result<Arc<dyn Store>, Failure> {
        crate::service::open_configured(&cfg.store, false, true)
            .await
            .map_err(|e| admin_failure(e.into()))
    }

    /// The admin service on the store (if one exists; `create` makes it).
    pub async fn admin(&self, cfg: &Config, create: bool) -> Result<Admin, Failure> {
        let store = if create {
            Some(self.store(cfg).await?)
        } else if cfg.store.url.is_some() || exists(&cfg.store.path).await {
            Some(self.existing_store(cfg).await?)
        } else {
            None
        };
        Ok(Admin::new(
            store,
            cfg,
            self.config_path.is_some(),
            Clock::system(),
        ))
    }
}

pub use crate::clock::fmt_time;

/// Parses `10m`, `2h`, `1day` into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, Failure> {
    humantime::parse_duration(text)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .map_err(|e| {
            input_error(format!(
                "{text:?} is not a duration like 30s, 10m, 2h ({e})"
            ))
        })
}

pub fn print_json<T: serde::Serialize>(value: &T) -> CliResult {
    let line = serde_json::to_string(value)?;
    println!("{line}");
    Ok(())
}

async fn retry(ctx: &Ctx, args: RetryArgs) -> CliResult {
    let cfg = ctx.config().await?;
    let admin = ctx.admin(&cfg, false).await?;
    let n = admin
        .retry(args.provider.as_deref(), args.rule.as_deref())
        .await
        .map_err(admin_failure)?;
    if args.json {
        return print_json(&serde_json::json!({ "requeued": n }));
    }
    println!("re-queued {n} dead batch(es); a running server sends them within its poll interval");
    Ok(())
}

async fn status(ctx: &Ctx, args: StatusArgs) -> CliResult {
    let cfg = ctx.config().await?;
    let depths = ctx
        .admin(&cfg, false)
        .await?
        .status()
        .await
        .map_err(admin_failure)?;
    // The sources run inside the server: asked over HTTP (`/healthz`), when there are any.
    let sources = if cfg.sources.is_empty() {
        None
    } else {
        Some(server_sources(&cfg, args.server).await)
    };
    if args.json {
        let (list, error) = match &sources {
            Some(Ok(list)) => (Some(list.clone()), None),
            Some(Err(e)) => (None, Some(e.clone())),
            None => (None, None),
        };
        return print_json(&serde_json::json!({
            "lanes": depths,
            "sources": list,
            "sources_error": error,
        }));
    }
    print_sources(sources);
    if depths.is_empty() {
        println!("no queued, waiting, in-flight or dead work");
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header([
        "LANE",
        "PENDING",
        "WAITING",
        "IN FLIGHT",
        "DEAD",
        "OLDEST PENDING",
    ]);
    for d in depths {
        table.add_row([
            d.lane,
            d.pending.to_string(),
            d.waiting_batches.to_string(),
            d.inflight_batches.to_string(),
            d.dead_batches.to_string(),
            d.oldest_pending_at
                .map(fmt_time)
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    println!("{table}");
    Ok(())
}

/// The running server's sources, from its `/healthz` (with the admin token when one is
/// configured; a server on this machine answers loopback callers without it).
async fn server_sources(
    cfg: &Config,
    server: Option<std::net::SocketAddr>,
) -> Result<Vec<serde_json::Value>, String> {
    let mut addr = server.unwrap_or(cfg.server.listen);
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let url = format!("http://{addr}/healthz");
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let mut req = http.get(&url);
    // The admin token goes in the clear: only to this machine or the configured server.
    let trusted = addr.ip().is_loopback() || server.is_none() || server == Some(cfg.server.listen);
    match &cfg.admin.token {
        Some(token) if trusted => {
            let token = token.load().await?;
            req = req.bearer_auth(token.expose());
        }
        Some(_) => eprintln!(
            "note: the admin token is not sent to {addr} over plain HTTP (only to loopback or \
             server.listen); without it only the status is shown"
        ),
        None => {}
    }
    let resp = req.send().await.map_err(|e| {
        format!("the server at {addr} does not answer ({e}); is `edgepurge serve` running there? (--server HOST:PORT)")
    })?;
    let body: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| format!("{url}: not the JSON of /healthz: {e}"))?;
    match body.get("sources").and_then(serde_json::Value::as_array) {
        Some(list) => Ok(list.clone()),
        None => Err(format!(
            "{url} shows no sources (without the admin token only the status is shown; set \
             [admin] token_env)"
        )),
    }
}

fn print_sources(sources: Option<Result<Vec<serde_json::Value>, String>>) {
    let list = match sources {
        None => return,
        Some(Err(e)) => {
            println!("sources: {e}\n");
            return;
        }
        Some(Ok(list)) => list,
    };
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header([
        "SOURCE",
        "KIND",
        "CONNECTED",
        "LAG",
        "RECEIVED",
        "ACKED",
        "DEAD-LETTERED",
        "RETRIED",
        "LAST ERROR",
    ]);
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(s) => crate::purgers::snippet(s, 80),
        other => other.to_string(),
    };
    for s in &list {
        table.add_row(
            [
                "name",
                "kind",
                "connected",
                "lag",
                "received",
                "acked",
                "dead_lettered",
                "retried",
                "last_error",
            ]
            .map(|k| text(&s[k])),
        );
    }
    println!("{table}\n");
}

async fn migrate(ctx: &Ctx) -> CliResult {
    let cfg = ctx.config().await?;
    crate::service::open_configured(&cfg.store, true, true)
        .await
        .map_err(|e| admin_failure(e.into()))?;
    let version = if cfg.store.url.is_some() {
        crate::store::PgStore::schema_version()
    } else {
        SqliteStore::schema_version()
    };
    println!(
        "store {}: schema version {version}, up to date",
        cfg.store.describe()
    );
    Ok(())
}

/// Whether `path` exists (for commands that only read an optional store).
pub async fn exists(path: &Path) -> bool {
    tokio::fs::try_exists(path).await.unwrap_or(false)
}
