//! `rule add|list|show|delete|enable|disable`. Flags mirror the rule fields.

use super::{admin_failure, print_json, CliResult, Ctx};
use crate::app::Planner;
use crate::clock::local_time;
use crate::server::views::rule_view;
use crate::store::StoredRule;
use edgepurge_core::{Mode, RuleSpec};
use serde_json::{json, Value};

#[derive(Debug, clap::Subcommand)]
pub enum RuleCommand {
    /// Add a rule (names are unique; rules are immutable: delete and add to change one).
    #[command(after_help = "Examples:\n  \
        edgepurge rule add --name images --bucket assets --event created --prefix img/ \
        --domain https://cdn.example.com --provider tencent\n  \
        edgepurge rule add --name docs --bucket assets --event created,removed --suffix .html \
        --index-document index.html --domain https://www.example.com --provider cf --mode url")]
    Add(Box<AddArgs>),
    /// List every rule (config file rules and added ones).
    #[command(after_help = "Example:\n  \
        edgepurge rule list --json\n\n\
        With --config, the config file's rules are listed as the file is now (what a server \
        applies after its next start or SIGHUP).")]
    List {
        /// One JSON array of rules, as the admin API's `GET /v1/rules` shows them.
        #[arg(long)]
        json: bool,
    },
    /// Show one rule.
    #[command(after_help = "Example:\n  \
        edgepurge rule show images")]
    Show {
        /// The rule's name.
        name: String,
        /// One JSON object, as the admin API's `GET /v1/rules/{name}` shows it.
        #[arg(long)]
        json: bool,
    },
    /// Delete an added rule (config file rules are changed in the file).
    #[command(after_help = "Example:\n  \
        edgepurge rule delete images")]
    Delete {
        /// The rule's name.
        name: String,
        /// Print `{"deleted": NAME}` instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// Enable an added rule.
    #[command(after_help = "Example:\n  \
        edgepurge rule enable images")]
    Enable {
        /// The rule's name.
        name: String,
        /// Print `{"rule": NAME, "enabled": true}` instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// Disable an added rule (events no longer match it; the rule is kept).
    #[command(after_help = "Example:\n  \
        edgepurge rule disable images")]
    Disable {
        /// The rule's name.
        name: String,
        /// Print `{"rule": NAME, "enabled": false}` instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The rule's name: unique, and how the log and `rule show|delete` refer to it.
    #[arg(long)]
    pub name: String,
    /// Bucket name (for COS: name-appid).
    #[arg(long)]
    pub bucket: String,
    /// Event types, repeatable or comma-separated: put, post, copy,
    /// complete-multipart-upload, delete, delete-marker, created, removed, or native names.
    #[arg(long = "event", required = true, value_delimiter = ',')]
    pub events: Vec<String>,
    /// Only keys starting with this, e.g. `img/` (without it: the whole bucket).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Only keys ending with this, e.g. `.html` (with --prefix: both must hold).
    #[arg(long)]
    pub suffix: Option<String>,
    /// CDN domain with scheme, repeatable.
    #[arg(long = "domain", required = true, value_delimiter = ',')]
    pub domains: Vec<String>,
    /// Provider account name from [providers.NAME]; repeatable or comma-separated to purge
    /// through several accounts (e.g. a mainland China CDN and a global one).
    #[arg(long = "provider", required = true, value_delimiter = ',')]
    pub providers: Vec<String>,
    /// url (purge the object's URL), dir (its parent directory) or tag (surrogate keys).
    #[arg(long, default_value = "url")]
    pub mode: Mode,
    /// The file a directory URL serves, e.g. `index.html`: a change to `a/index.html` also
    /// purges `a/`.
    #[arg(long)]
    pub index_document: Option<String>,
    /// Leading part of the key that is not in the URL, e.g. `site/` when the CDN serves
    /// `site/a.css` as `/a.css` (keys outside it purge nothing).
    #[arg(long)]
    pub strip_prefix: Option<String>,
    /// With --mode tag: surrogate-key template, repeatable, e.g. `{seg1}` or `product-{stem}`.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// With --mode dir: let a key at the domain's root purge the whole domain (needed when
    /// the prefix names no folder).
    #[arg(long)]
    pub allow_host_purge: bool,
    /// After each purge, fetch the purged URLs through the CDN and check they are fresh
    /// (compared with the event's ETag or size); purge once more if still stale.
    #[arg(long)]
    pub verify: bool,
    /// After each purge completed (and was verified, with --verify), prefetch the purged
    /// URLs into the CDN, so the first visitor gets a cache hit (accounts that can prefetch:
    /// tencent-cdn, edgeone, aliyun-cdn, http-purge).
    #[arg(long)]
    pub warm: bool,
    /// Purge an object's URL at most once per this many milliseconds: a change inside the
    /// interval is held until it ends (several coalesce), and always purged then. 0: none.
    #[arg(long, default_value_t = 0)]
    pub min_interval_ms: u64,
    /// Add the rule disabled.
    #[arg(long)]
    pub disabled: bool,
    /// Print the added rule as one JSON object (as `rule show --json`).
    #[arg(long)]
    pub json: bool,
}

/// The rules as the admin API shows them; `in_force` (whether a server with this config
/// applies the rule) is known only with a config file, else `null`.
fn views(
    admin: &crate::app::Admin,
    cfg: &crate::config::Config,
    rules: &[StoredRule],
) -> Vec<Value> {
    let (planner, _) = Planner::new(rules, &cfg.providers, false);
    rules
        .iter()
        .map(|r| {
            let mut v = rule_view(r, &planner);
            if !admin.checks_providers() {
                if let Value::Object(map) = &mut v {
                    map.insert("in_force".into(), Value::Null);
                }
            }
            v
        })
        .collect()
}

fn one_view(admin: &crate::app::Admin, cfg: &crate::config::Config, rule: StoredRule) -> Value {
    views(admin, cfg, &[rule]).pop().unwrap_or(Value::Null)
}

pub async fn run(ctx: &Ctx, cmd: RuleCommand) -> CliResult {
    let cfg = ctx.config().await?;
    let creates = matches!(cmd, RuleCommand::Add(_));
    let admin = ctx.admin(&cfg, creates).await?;
    match cmd {
        RuleCommand::Add(a) => {
            let a = *a;
            let spec = RuleSpec {
                name: a.name,
                bucket: a.bucket,
                events: a.events,
                prefix: a.prefix,
                suffix: a.suffix,
                domains: a.domains,
                // One account keeps the `provider` key, so the rule reads as a user writes it.
                provider: match a.providers.as_slice() {
                    [one] => one.clone(),
                    _ => String::new(),
                },
                providers: if a.providers.len() == 1 {
                    Vec::new()
                } else {
                    a.providers
                },
                mode: a.mode,
                index_document: a.index_document,
                strip_prefix: a.strip_prefix,
                tags: a.tags,
                allow_host_purge: a.allow_host_purge,
                verify: a.verify,
                warm: a.warm,
                min_interval_ms: a.min_interval_ms,
                enabled: !a.disabled,
            };
            let json = a.json;
            if !admin.checks_providers() {
                eprintln!(
                    "note: no --config given, so provider {} was not checked",
                    spec.provider_names().collect::<Vec<_>>().join(", ")
                );
            }
            let rule = admin.add_rule(spec).await.map_err(admin_failure)?;
            if json {
                let stored = admin.rule(&rule.spec.name).await.map_err(admin_failure)?;
                return print_json(&one_view(&admin, &cfg, stored));
            }
            println!(
                "rule {:?} added; a running server applies it within a second",
                rule.spec.name
            );
            Ok(())
        }
        RuleCommand::List { json } => {
            // With a config file: its rules as written now (what a server started now, or
            // reloaded with SIGHUP, applies) and the added ones; without: what the store has.
            let mut rules = if admin.checks_providers() {
                admin.rules_as_configured().await
            } else {
                admin.rules().await
            }
            .map_err(admin_failure)?;
            rules.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
            if json {
                return print_json(&views(&admin, &cfg, &rules));
            }
            if rules.is_empty() {
                println!("no rules (add one with `edgepurge rule add` or [[rules]] in the config)");
                return Ok(());
            }
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::NOTHING);
            table.set_header([
                "NAME", "ORIGIN", "ENABLED", "BUCKET", "EVENTS", "PREFIX", "SUFFIX", "MODE",
                "PROVIDER", "DOMAINS",
            ]);
            for r in rules {
                let s = r.spec;
                let providers = s.provider_names().collect::<Vec<_>>().join(",");
                table.add_row([
                    s.name,
                    r.origin.as_str().to_owned(),
                    if s.enabled { "yes" } else { "no" }.to_owned(),
                    s.bucket,
                    s.events.join(","),
                    s.prefix.unwrap_or_else(|| "-".into()),
                    s.suffix.unwrap_or_else(|| "-".into()),
                    s.mode.as_str().to_owned(),
                    providers,
                    s.domains.join(","),
                ]);
            }
            println!("{table}");
            Ok(())
        }
        RuleCommand::Show { name, json } => {
            let r = admin.rule(&name).await.map_err(admin_failure)?;
            if json {
                return print_json(&one_view(&admin, &cfg, r));
            }
            let mut text = toml::to_string_pretty(&r.spec)?;
            let created = match (r.origin, r.created_at) {
                (crate::store::RuleOrigin::Config, 0) => {
                    "not installed yet (a server installs it at its start or on SIGHUP)".into()
                }
                (_, t) => format!("created {}", local_time(t)),
            };
            text.push_str(&format!("# origin: {}, {created}\n", r.origin.as_str()));
            print!("{text}");
            Ok(())
        }
        RuleCommand::Delete { name, json } => {
            admin.delete_rule(&name).await.map_err(admin_failure)?;
            if json {
                return print_json(&json!({ "deleted": name }));
            }
            println!("rule {name:?} deleted");
            Ok(())
        }
        RuleCommand::Enable { name, json } => switch(&admin, name, true, json).await,
        RuleCommand::Disable { name, json } => switch(&admin, name, false, json).await,
    }
}

async fn switch(admin: &crate::app::Admin, name: String, enabled: bool, json: bool) -> CliResult {
    admin
        .set_rule_enabled(&name, enabled)
        .await
        .map_err(admin_failure)?;
    if json {
        return print_json(&json!({ "rule": name, "enabled": enabled }));
    }
    println!(
        "rule {name:?} {}",
        if enabled { "enabled" } else { "disabled" }
    );
    Ok(())
}
