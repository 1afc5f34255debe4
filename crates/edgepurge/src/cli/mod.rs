//! The `edgepurge` command line. Commands act on the same store as a running server.

mod function;
mod log;
mod purge;
mod rule;
mod serve;
mod simulate;
mod status;

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
    #[command(after_help = "Example:\n  \
        edgepurge serve --config /etc/edgepurge/edgepurge.toml --listen 127.0.0.1:8080\n\n\
        SIGTERM or SIGINT stop it (requests in flight finish); SIGHUP reads the config file \
        again: its rules, the webhook and admin tokens (see docs/production.md).")]
    Serve(serve::ServeArgs),
    /// Check a config file.
    #[command(after_help = "Example:\n  \
        edgepurge config check --config edgepurge.toml")]
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Show what an event would purge, without purging.
    #[command(after_help = "Examples:\n  \
        edgepurge simulate --config edgepurge.toml --event put.json\n  \
        cat put.json | edgepurge simulate --event - --json\n\n\
        Standard output: one JSON line {\"rule\",\"provider\",\"kind\",\"target\"} per \
        target. When an event purges nothing, standard error says why, rule by rule (with \
        --json, also a JSON line on standard output).")]
    Simulate(simulate::SimulateArgs),
    /// Add, list, show, delete, enable or disable rules.
    #[command(after_help = "Examples:\n  \
        edgepurge rule list --config edgepurge.toml\n  \
        edgepurge rule add --name images --bucket assets --event created --prefix img/ \
        --domain https://cdn.example.com --provider tencent")]
    Rule {
        #[command(subcommand)]
        command: rule::RuleCommand,
    },
    /// Read the purge log.
    Log(log::LogArgs),
    /// Purge URLs or directories by hand through a provider account.
    #[command(after_help = "Examples:\n  \
        edgepurge purge https://cdn.example.com/a.css https://cdn.example.com/b.js\n  \
        edgepurge purge --provider tencent --dir https://cdn.example.com/img/\n  \
        edgepurge purge --file urls.txt --no-wait --json")]
    Purge(purge::PurgeArgs),
    /// Re-queue dead letters (purges that were given up).
    #[command(after_help = "Examples:\n  \
        edgepurge retry\n  \
        edgepurge retry --provider tencent --rule images --json")]
    Retry(RetryArgs),
    /// Move the queued work of a lane no provider account serves any more (account removed
    /// or renamed) to the dead letters.
    #[command(after_help = "Examples:\n  \
        edgepurge status            # lanes no account serves say so\n  \
        edgepurge discard --lane old-tencent\n  \
        edgepurge discard --provider old-varnish   # every node's lane\n  \
        edgepurge retry --provider old-tencent   # once the account is back\n\n\
        A plain `edgepurge retry` leaves the dead letters of lanes no account serves.")]
    Discard(DiscardArgs),
    /// Queue depth per lane.
    #[command(after_help = "Examples:\n  \
        edgepurge status\n  \
        edgepurge status --json --server 127.0.0.1:8080\n\n\
        Times are local (RFC 3339, with the offset) in text and UTC (RFC 3339) in JSON.")]
    Status(status::StatusArgs),
    /// Purge what one event body asks for, now, without store or server (function mode).
    Handle(function::HandleArgs),
    /// Run as a Tencent SCF or AWS Lambda custom-runtime function (function mode).
    Function(function::FunctionArgs),
    /// Write a function zip for Tencent SCF or AWS Lambda.
    Package(function::PackageArgs),
    /// Print a shell completion script, e.g. `edgepurge completions bash >
    /// /etc/bash_completion.d/edgepurge`.
    #[command(after_help = "Examples:\n  \
        edgepurge completions bash > /etc/bash_completion.d/edgepurge\n  \
        edgepurge completions zsh > \"${fpath[1]}/_edgepurge\"")]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Create the store or bring its schema up to date (SQLite file or PostgreSQL database),
    /// then exit. Run it once before starting upgraded nodes of a cluster.
    #[command(after_help = "Example:\n  \
        edgepurge migrate --config /etc/edgepurge/edgepurge.toml")]
    Migrate(MigrateArgs),
    /// Print the manual page (roff), e.g. `edgepurge man > /usr/local/share/man/man1/edgepurge.1`.
    #[command(after_help = "Example:\n  \
        edgepurge man > /usr/local/share/man/man1/edgepurge.1")]
    Man,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate the config (and the rules stored beside it), check that every named
    /// secret is there; every problem is listed with its place (exit 2 when there is one).
    #[command(after_help = "Examples:\n  \
        edgepurge config check --config edgepurge.toml\n  \
        edgepurge config check --config edgepurge.toml --json")]
    Check(serve::CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Print `{"store", "schema_version"}` instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["lane", "provider"])))]
pub struct DiscardArgs {
    /// One lane (as `edgepurge status` names it), e.g. a removed node's of an http-purge
    /// account.
    #[arg(long)]
    pub lane: Option<String>,
    /// Every lane of a provider account removed from the config (targets it never fanned out
    /// to its nodes stay queued: they go to the nodes it has if it comes back).
    #[arg(long)]
    pub provider: Option<String>,
    /// Print `{"lanes", "batches", "targets", "dead_before", "fanout_left", "waiting_until"}`
    /// instead of sentences.
    #[arg(long)]
    pub json: bool,
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
            command: ConfigCommand::Check(args),
        } => serve::check(&ctx, args).await,
        Command::Simulate(args) => simulate::run(&ctx, args).await,
        Command::Rule { command } => rule::run(&ctx, command).await,
        Command::Log(args) => log::run(&ctx, args).await,
        Command::Purge(args) => purge::run(&ctx, args).await,
        Command::Retry(args) => retry(&ctx, args).await,
        Command::Discard(args) => discard(&ctx, args).await,
        Command::Status(args) => status::run(&ctx, args).await,
        Command::Migrate(args) => migrate(&ctx, args).await,
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
        self.config_checked().await.map_err(|e| Failure {
            code: 2,
            error: anyhow::anyhow!("invalid configuration:\n{e}"),
        })
    }

    /// The config with `--db` applied, or every problem of the file.
    pub async fn config_checked(&self) -> Result<Config, config::ConfigError> {
        let mut cfg = config::load_or_default(self.config_path.as_deref()).await?;
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

async fn discard(ctx: &Ctx, args: DiscardArgs) -> CliResult {
    let cfg = ctx.config().await?;
    let admin = ctx.admin(&cfg, false).await?;
    let (target, account) = match (args.lane, args.provider) {
        (Some(lane), None) => {
            let account = lane.split('@').next().unwrap_or_default().to_owned();
            (crate::app::DiscardTarget::Lane(lane), account)
        }
        (None, Some(provider)) => (
            crate::app::DiscardTarget::Provider(provider.clone()),
            provider,
        ),
        _ => return Err(input_error("give exactly one of --lane and --provider")),
    };
    let d = admin.discard(&target).await.map_err(admin_failure)?;
    if args.json {
        return print_json(&crate::server::views::discarded_view(&d));
    }
    if d.batches == 0 {
        println!("nothing moved");
    } else {
        println!(
            "{} target(s) in {} batch(es) moved to the dead letters from lane(s) {} (their log \
             records say why); `edgepurge retry --provider {}` queues them again once the \
             account is back under that name",
            d.targets,
            d.batches,
            d.lanes.join(", "),
            edgepurge_core::printable(&account)
        );
    }
    if d.dead_before > 0 {
        println!("{} batch(es) were dead letters already", d.dead_before);
    }
    if d.fanout_left > 0 {
        println!(
            "left: {} target(s) the account never fanned out to its nodes; they stay queued \
             and go to the nodes it has if it comes back",
            d.fanout_left
        );
    }
    if let Some(at) = d.waiting_until {
        println!(
            "left: work waiting for a quota day or a rule's min_interval_ms; run discard again \
             after {}",
            crate::clock::local_time(at)
        );
    }
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
    if args.provider.is_none() {
        // Said, so a 0 is not read as "nothing is dead".
        let (lanes, _) = admin.status().await.map_err(admin_failure)?;
        let left: Vec<String> = lanes
            .iter()
            .filter(|d| d.dead_batches > 0 && admin.serves(&d.lane) == Some(false))
            .map(|d| format!("{} ({})", d.lane, d.dead_batches))
            .collect();
        if !left.is_empty() {
            println!(
                "left: dead batches of lanes no provider account of the config serves (they \
                 would only queue up again, unsent): {}; `edgepurge retry --provider ACCOUNT` \
                 once the account is back",
                edgepurge_core::printable(&left.join(", "))
            );
        }
    }
    Ok(())
}

async fn migrate(ctx: &Ctx, args: MigrateArgs) -> CliResult {
    let cfg = ctx.config().await?;
    crate::service::open_configured(&cfg.store, true, true)
        .await
        .map_err(|e| admin_failure(e.into()))?;
    let version = if cfg.store.url.is_some() {
        crate::store::PgStore::schema_version()
    } else {
        SqliteStore::schema_version()
    };
    if args.json {
        return print_json(&serde_json::json!({
            "store": cfg.store.describe(),
            "schema_version": version,
        }));
    }
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Commands that print something but take no `--json`, and why.
    const NO_JSON: [(&str, &str); 5] = [
        (
            "edgepurge serve",
            "runs until stopped; what it says is the log",
        ),
        (
            "edgepurge function",
            "a runtime loop; its answers go to the platform",
        ),
        ("edgepurge handle", "always prints one JSON object"),
        ("edgepurge completions", "prints a shell script"),
        ("edgepurge man", "prints a manual page"),
    ];

    /// Every problem of `cmd` and its subcommands: an argument without help, a command
    /// without a description or without an example of itself in its `after_help`, a command
    /// that prints without `--json`.
    fn walk(cmd: &clap::Command, path: &str, problems: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            if help.trim().is_empty() {
                problems.push(format!("{path}: argument {} has no help", arg.get_id()));
            }
        }
        if path != "edgepurge" && cmd.get_about().is_none() {
            problems.push(format!("{path}: no description"));
        }
        let after = cmd
            .get_after_help()
            .map(ToString::to_string)
            .unwrap_or_default();
        if !after.contains(&format!("{path} ")) {
            problems.push(format!("{path}: no example (`{path} ...` in after_help)"));
        }
        let leaf = cmd.get_subcommands().next().is_none();
        let json = cmd.get_arguments().any(|a| a.get_id() == "json");
        if leaf && !json && !NO_JSON.iter().any(|(p, _)| *p == path) {
            problems.push(format!("{path}: no --json"));
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), problems);
        }
    }

    #[test]
    fn every_command_has_an_example_every_argument_help_and_every_printer_json() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut problems = Vec::new();
        walk(&cmd, "edgepurge", &mut problems);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        // The walk sees what it checks: a command without them is reported.
        let bare = clap::Command::new("edgepurge")
            .subcommand(clap::Command::new("x").arg(clap::Arg::new("y").long("y")));
        let mut found = Vec::new();
        walk(&bare, "edgepurge", &mut found);
        for want in [
            "edgepurge x: argument y has no help",
            "edgepurge x: no description",
            "edgepurge x: no example",
            "edgepurge x: no --json",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(want)),
                "{want}: {found:?}"
            );
        }
    }
}
