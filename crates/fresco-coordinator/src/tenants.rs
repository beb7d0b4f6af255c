//! `tenants set | list`: each tenant's share of the farm (its weight) and
//! its limits, against any store (the coordinator's Postgres, `fresco
//! dev`'s SQLite). A running coordinator picks a change up on its next
//! reconcile pass (weights) or at once (limits, read by every submission
//! and claim).

use anyhow::bail;
use clap::{Args, Subcommand};
use fresco_core::access::check_tenant;
use fresco_store::{JobStore, TenantLimits, TenantSettings};
use tracing::info;

/// The `tenants.weight` column's bounds.
const WEIGHTS: std::ops::RangeInclusive<u32> = 1..=10_000;

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Set a tenant's weight and limits; a flag left out keeps what the
    /// tenant had (a tenant never set weighs 1 and has no limits).
    Set(SetArgs),
    /// List every tenant with stored settings.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The tenant, as its client keys name it.
    pub tenant: String,
    /// Its share of each model's workers against other tenants with
    /// queued work (1 to 10000).
    #[arg(long)]
    pub weight: Option<u32>,
    /// Tasks it may have queued at once: a number, or `none`.
    #[arg(long, value_parser = parse_limit)]
    pub max_queued_tasks: Option<Limit>,
    /// Tasks it may have running at once: a number, or `none`.
    #[arg(long, value_parser = parse_limit)]
    pub max_running_tasks: Option<Limit>,
    /// Device-seconds its tasks may take per UTC day: a number, or `none`.
    #[arg(long, value_parser = parse_limit)]
    pub max_device_seconds_per_day: Option<Limit>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

/// A limit flag's value: a number, or `none` for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<u64>);

fn parse_limit(value: &str) -> Result<Limit, String> {
    if value.eq_ignore_ascii_case("none") {
        return Ok(Limit(None));
    }
    let n: u64 = value
        .parse()
        .map_err(|_| format!("must be a whole number ≥ 0 or `none` (got {value:?})"))?;
    if i64::try_from(n).is_err() {
        return Err(format!("must be at most {} (got {n})", i64::MAX));
    }
    Ok(Limit(Some(n)))
}

/// `current` with the flags of `args` applied; refused naming the flag
/// when one breaks a rule.
pub fn apply(current: TenantLimits, args: &SetArgs) -> anyhow::Result<TenantLimits> {
    check_tenant(&args.tenant).map_err(|rule| anyhow::anyhow!("tenant: {rule}"))?;
    if let Some(weight) = args.weight
        && !WEIGHTS.contains(&weight)
    {
        bail!(
            "--weight: must be {} to {} (got {weight})",
            WEIGHTS.start(),
            WEIGHTS.end()
        );
    }
    Ok(TenantLimits {
        weight: args.weight.unwrap_or(current.weight),
        max_queued_tasks: args
            .max_queued_tasks
            .map_or(current.max_queued_tasks, |l| l.0),
        max_running_tasks: args
            .max_running_tasks
            .map_or(current.max_running_tasks, |l| l.0),
        max_device_seconds_per_day: args
            .max_device_seconds_per_day
            .map_or(current.max_device_seconds_per_day, |l| l.0),
    })
}

/// Runs one `tenants` command against `store`, printing what it did.
pub async fn run(store: &dyn JobStore, command: TenantsCommand) -> anyhow::Result<()> {
    match command {
        TenantsCommand::Set(args) => {
            let tenants = store.list_tenants().await?;
            let current = tenants
                .into_iter()
                .find(|t| t.name == args.tenant)
                .map(|t| t.limits)
                .unwrap_or_default();
            let limits = apply(current, &args)?;
            let settings = TenantSettings {
                name: args.tenant,
                limits,
            };
            store.set_tenant(&settings).await?;
            info!(tenant = %settings.name, limits = ?settings.limits, "tenant set");
            println!("{}", describe(&settings));
        }
        TenantsCommand::List(args) => {
            let tenants = store.list_tenants().await?;
            if args.json {
                let all: Vec<_> = tenants.iter().map(tenant_json).collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                print_table(&tenants);
            }
        }
    }
    Ok(())
}

fn limit_text(limit: Option<u64>) -> String {
    limit.map_or_else(|| "none".to_owned(), |n| n.to_string())
}

/// `tenant T: weight W, max queued …` as `set` confirms it.
fn describe(tenant: &TenantSettings) -> String {
    let l = &tenant.limits;
    format!(
        "tenant {}: weight {}, max queued tasks {}, max running tasks {}, max device-seconds per day {}",
        tenant.name,
        l.weight,
        limit_text(l.max_queued_tasks),
        limit_text(l.max_running_tasks),
        limit_text(l.max_device_seconds_per_day)
    )
}

/// A tenant as `--json` prints it (`null`: no limit).
pub fn tenant_json(tenant: &TenantSettings) -> serde_json::Value {
    let l = &tenant.limits;
    serde_json::json!({
        "tenant": tenant.name,
        "weight": l.weight,
        "max_queued_tasks": l.max_queued_tasks,
        "max_running_tasks": l.max_running_tasks,
        "max_device_seconds_per_day": l.max_device_seconds_per_day,
    })
}

fn print_table(tenants: &[TenantSettings]) {
    println!(
        "{:<24}  {:>6}  {:>10}  {:>11}  {:>17}",
        "TENANT", "WEIGHT", "MAX QUEUED", "MAX RUNNING", "MAX DEVICE-S/DAY"
    );
    for t in tenants {
        let l = &t.limits;
        println!(
            "{:<24}  {:>6}  {:>10}  {:>11}  {:>17}",
            t.name,
            l.weight,
            limit_text(l.max_queued_tasks),
            limit_text(l.max_running_tasks),
            limit_text(l.max_device_seconds_per_day)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(tenant: &str) -> SetArgs {
        SetArgs {
            tenant: tenant.into(),
            weight: None,
            max_queued_tasks: None,
            max_running_tasks: None,
            max_device_seconds_per_day: None,
        }
    }

    #[test]
    fn flags_left_out_keep_what_the_tenant_had() {
        let current = TenantLimits {
            weight: 3,
            max_queued_tasks: Some(10),
            max_running_tasks: Some(2),
            max_device_seconds_per_day: None,
        };
        let mut set = args("team-a");
        set.max_running_tasks = Some(Limit(None));
        set.max_device_seconds_per_day = Some(Limit(Some(3600)));
        let limits = apply(current, &set).expect("applied");
        assert_eq!(
            limits,
            TenantLimits {
                weight: 3,
                max_queued_tasks: Some(10),
                max_running_tasks: None,
                max_device_seconds_per_day: Some(3600),
            }
        );
    }

    #[test]
    fn bad_flags_are_refused_naming_them() {
        let mut set = args("team-a");
        set.weight = Some(0);
        let err = apply(TenantLimits::default(), &set).expect_err("refused");
        assert_eq!(err.to_string(), "--weight: must be 1 to 10000 (got 0)");
        let err = apply(TenantLimits::default(), &args("a b")).expect_err("refused");
        assert!(err.to_string().starts_with("tenant: "), "{err}");
        assert_eq!(parse_limit("none"), Ok(Limit(None)));
        assert_eq!(parse_limit("12"), Ok(Limit(Some(12))));
        assert!(parse_limit("-1").is_err());
    }
}
