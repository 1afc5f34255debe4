//! Stored rules: CLI rules plus a copy of the config file's rules, shared by every node.
//! Changes take a lock of their own, so nodes starting at once replace the config rules one
//! after the other.

use super::sql;
use super::tx::{col, Tx};
use crate::store::*;

async fn bump(t: &Tx<'_>) -> StoreResult<()> {
    t.execute(sql::RULES_BUMP, &[], "bump rules version")
        .await
        .map(drop)
}

async fn lock(t: &Tx<'_>) -> StoreResult<()> {
    t.execute(sql::RULES_LOCK, &[], "lock rules")
        .await
        .map(drop)
}

pub(super) async fn version(t: &Tx<'_>) -> StoreResult<i64> {
    col(
        &t.query_one(sql::RULES_VERSION, &[], "read rules version")
            .await?,
        0,
    )
}

pub(super) async fn list(t: &Tx<'_>) -> StoreResult<Vec<StoredRule>> {
    let mut out = Vec::new();
    for r in t.query(sql::RULES_LIST, &[], "list rules").await? {
        let name: String = col(&r, 0)?;
        let spec: String = col(&r, 1)?;
        let origin: String = col(&r, 2)?;
        let spec: RuleSpec = serde_json::from_str(&spec)
            .map_err(|e| StoreError::Corrupt(format!("rule {name:?}: {e}")))?;
        out.push(StoredRule {
            spec,
            origin: match origin.as_str() {
                "config" => RuleOrigin::Config,
                _ => RuleOrigin::Cli,
            },
            created_at: col(&r, 3)?,
        });
    }
    Ok(out)
}

async fn origin_of(t: &Tx<'_>, name: &str) -> StoreResult<Option<String>> {
    t.query_opt(sql::RULE_ORIGIN, &[&name], "read rule")
        .await?
        .map(|r| col(&r, 0))
        .transpose()
}

fn encode(spec: &RuleSpec) -> StoreResult<String> {
    serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(format!("encode rule: {e}")))
}

pub(super) async fn add(
    t: &Tx<'_>,
    spec: &RuleSpec,
    origin: RuleOrigin,
    now: Ms,
) -> StoreResult<()> {
    lock(t).await?;
    if let Some(existing) = origin_of(t, &spec.name).await? {
        return Err(StoreError::Conflict(format!(
            "rule {:?} already exists ({existing} rule); names are unique and rules immutable: \
             delete it first to replace it",
            spec.name
        )));
    }
    t.execute(
        sql::RULE_INSERT,
        &[&spec.name, &encode(spec)?, &origin.as_str(), &now, &now],
        "insert rule",
    )
    .await?;
    bump(t).await
}

pub(super) async fn sync_config(
    t: &Tx<'_>,
    specs: &[RuleSpec],
    now: Ms,
) -> StoreResult<ConfigRulesChange> {
    lock(t).await?;
    for spec in specs {
        if origin_of(t, &spec.name).await?.as_deref() == Some("cli") {
            return Err(StoreError::Conflict(format!(
                "rule {:?} is defined in the config file and was also added with `edgepurge rule \
                 add`; rename one of them or run `edgepurge rule delete {}`",
                spec.name, spec.name
            )));
        }
    }
    let old: Vec<(String, String, i64)> = t
        .query(sql::RULES_CONFIG, &[], "read config rules")
        .await?
        .iter()
        .map(|r| Ok((col(r, 0)?, col(r, 1)?, col(r, 2)?)))
        .collect::<StoreResult<_>>()?;
    t.execute(sql::RULES_CONFIG_DELETE, &[], "replace config rules")
        .await?;
    let mut new = Vec::with_capacity(specs.len());
    for spec in specs {
        let text = encode(spec)?;
        let previous = old.iter().find(|(n, _, _)| n == &spec.name);
        let created = previous.map_or(now, |(_, _, c)| *c);
        t.execute(
            sql::RULE_INSERT,
            &[&spec.name, &text, &"config", &created, &now],
            "insert config rule",
        )
        .await?;
        new.push((spec.name.clone(), text));
    }
    let old: Vec<(String, String)> = old.into_iter().map(|(n, t, _)| (n, t)).collect();
    let change = ConfigRulesChange::between(&old, &new);
    if !change.is_empty() {
        bump(t).await?;
    }
    Ok(change)
}

async fn require_cli_rule(t: &Tx<'_>, name: &str) -> StoreResult<()> {
    match origin_of(t, name).await?.as_deref() {
        None => Err(StoreError::NotFound(format!(
            "no rule named {name:?} (see `edgepurge rule list`)"
        ))),
        Some("config") => Err(StoreError::Conflict(crate::rules::owned_by_config(name))),
        Some(_) => Ok(()),
    }
}

pub(super) async fn delete(t: &Tx<'_>, name: &str) -> StoreResult<()> {
    lock(t).await?;
    require_cli_rule(t, name).await?;
    t.execute(sql::RULE_DELETE, &[&name], "delete rule").await?;
    bump(t).await
}

pub(super) async fn set_enabled(t: &Tx<'_>, name: &str, enabled: bool, now: Ms) -> StoreResult<()> {
    lock(t).await?;
    require_cli_rule(t, name).await?;
    let text: String = col(
        &t.query_one(sql::RULE_SPEC, &[&name], "read rule").await?,
        0,
    )?;
    let mut spec: RuleSpec = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("rule {name:?}: {e}")))?;
    if spec.enabled == enabled {
        return Ok(());
    }
    spec.enabled = enabled;
    t.execute(
        sql::RULE_UPDATE_SPEC,
        &[&name, &encode(&spec)?, &now],
        "update rule",
    )
    .await?;
    bump(t).await
}
