//! `rule add|list|show|delete|enable|disable`. Flags mirror the rule fields.

use super::{fmt_time, input_error, print_json, CliResult, Ctx};
use crate::clock::now_ms;
use crate::store::StoredRule;
use edgepurge_core::{Mode, RuleSpec};

#[derive(Debug, clap::Subcommand)]
pub enum RuleCommand {
    /// Add a rule (names are unique; rules are immutable: delete and add to change one).
    Add(Box<AddArgs>),
    /// List every rule (config file rules and added ones).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one rule.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete an added rule.
    Delete { name: String },
    /// Enable an added rule.
    Enable { name: String },
    /// Disable an added rule (events no longer match it; the rule is kept).
    Disable { name: String },
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    #[arg(long)]
    pub name: String,
    /// Bucket name (for COS: name-appid).
    #[arg(long)]
    pub bucket: String,
    /// Event types, repeatable or comma-separated: put, post, copy,
    /// complete-multipart-upload, delete, delete-marker, created, removed, or native names.
    #[arg(long = "event", required = true, value_delimiter = ',')]
    pub events: Vec<String>,
    #[arg(long)]
    pub prefix: Option<String>,
    #[arg(long)]
    pub suffix: Option<String>,
    /// CDN domain with scheme, repeatable.
    #[arg(long = "domain", required = true, value_delimiter = ',')]
    pub domains: Vec<String>,
    /// Provider account name from [providers.NAME].
    #[arg(long)]
    pub provider: String,
    /// url (purge the object's URL), dir (its parent directory) or tag (surrogate keys).
    #[arg(long, default_value = "url")]
    pub mode: Mode,
    #[arg(long)]
    pub index_document: Option<String>,
    #[arg(long)]
    pub strip_prefix: Option<String>,
    /// With --mode tag: surrogate-key template, repeatable, e.g. `{seg1}` or `product-{stem}`.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Add the rule disabled.
    #[arg(long)]
    pub disabled: bool,
}

pub async fn run(ctx: &Ctx, cmd: RuleCommand) -> CliResult {
    let cfg = ctx.config()?;
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
                provider: a.provider,
                mode: a.mode,
                index_document: a.index_document,
                strip_prefix: a.strip_prefix,
                tags: a.tags,
                enabled: !a.disabled,
            };
            let rule = spec.clone().validate().map_err(input_error)?;
            if ctx.config_path.is_some() && !cfg.providers.contains_key(&rule.spec.provider) {
                return Err(input_error(format!(
                    "provider {:?} is not defined in {}; add [providers.{}] first",
                    rule.spec.provider,
                    ctx.config_path
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    rule.spec.provider
                )));
            }
            if ctx.config_path.is_none() {
                eprintln!(
                    "note: no --config given, so provider {:?} was not checked",
                    rule.spec.provider
                );
            }
            let store = ctx.store(&cfg)?;
            store.add_rule(spec, now_ms()).await?;
            println!(
                "rule {:?} added; a running server applies it within a second",
                rule.spec.name
            );
            Ok(())
        }
        RuleCommand::List { json } => {
            let rules = stored(ctx, &cfg).await?;
            if json {
                return print_json(&rules);
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
                table.add_row([
                    s.name,
                    r.origin.as_str().to_owned(),
                    if s.enabled { "yes" } else { "no" }.to_owned(),
                    s.bucket,
                    s.events.join(","),
                    s.prefix.unwrap_or_else(|| "-".into()),
                    s.suffix.unwrap_or_else(|| "-".into()),
                    s.mode.as_str().to_owned(),
                    s.provider,
                    s.domains.join(","),
                ]);
            }
            println!("{table}");
            Ok(())
        }
        RuleCommand::Show { name, json } => {
            let rules = stored(ctx, &cfg).await?;
            let Some(r) = rules.into_iter().find(|r| r.spec.name == name) else {
                return Err(input_error(format!(
                    "no rule named {name:?} (see `edgepurge rule list`)"
                )));
            };
            if json {
                return print_json(&r);
            }
            let mut text = toml::to_string_pretty(&r.spec)?;
            text.push_str(&format!(
                "# origin: {}, created {}\n",
                r.origin.as_str(),
                fmt_time(r.created_at)
            ));
            print!("{text}");
            Ok(())
        }
        RuleCommand::Delete { name } => {
            ctx.existing_store(&cfg)?.delete_rule(&name).await?;
            println!("rule {name:?} deleted");
            Ok(())
        }
        RuleCommand::Enable { name } => {
            ctx.existing_store(&cfg)?
                .set_rule_enabled(&name, true, now_ms())
                .await?;
            println!("rule {name:?} enabled");
            Ok(())
        }
        RuleCommand::Disable { name } => {
            ctx.existing_store(&cfg)?
                .set_rule_enabled(&name, false, now_ms())
                .await?;
            println!("rule {name:?} disabled");
            Ok(())
        }
    }
}

/// Rules in the store, plus the config file's rules a server has not installed yet.
async fn stored(ctx: &Ctx, cfg: &crate::config::Config) -> Result<Vec<StoredRule>, super::Failure> {
    let mut rules = if super::exists(&cfg.store.path) {
        ctx.existing_store(cfg)?.rules().await?
    } else {
        Vec::new()
    };
    for r in &cfg.rules {
        if !rules.iter().any(|s| s.spec.name == r.spec.name) {
            rules.push(StoredRule {
                spec: r.spec.clone(),
                origin: crate::store::RuleOrigin::Config,
                created_at: 0,
            });
        }
    }
    rules.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    Ok(rules)
}
