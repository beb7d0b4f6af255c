//! `keys create | list | revoke`: the farm's credentials, issued, listed
//! and revoked against any store (the coordinator's Postgres, `fresco dev`'s
//! SQLite). A key is printed once, when it is made; the store keeps only
//! its SHA-256. A revoked key is refused from the next call on.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use fresco_core::access::check_tenant;
use fresco_core::credentials::IssuedKey;
use fresco_core::{CredentialKind, Role};
use fresco_store::{ApiKey, JobStore, KeyScope, NewApiKey};
use tracing::info;

/// The longest key name.
const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a client key (a tenant and a role) or a worker token. Prints
    /// the key once, on stdout: keep it, only its digest is stored.
    Create(CreateArgs),
    /// List every key: id, kind, tenant, role, name, when made and revoked.
    /// Never a secret.
    List(ListArgs),
    /// Revoke a key by id: every call made with it from now on is refused.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// client (the client API, for a tenant and role) or worker (the
    /// worker API).
    #[arg(long, value_parser = parse_kind)]
    pub kind: CredentialKind,
    /// A client key's tenant: the jobs it sees and submits into.
    #[arg(long)]
    pub tenant: Option<String>,
    /// A client key's role: viewer (reads), submitter (also submits,
    /// cancels, retries, pauses, resumes) or admin (everything, every
    /// tenant, the workers).
    #[arg(long, value_parser = parse_role)]
    pub role: Option<Role>,
    /// Who holds it, or what for (shown in listings).
    #[arg(long, default_value = "")]
    pub name: String,
    /// Print a JSON object (with the key) instead of the bare key.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The key's id (the 12 hex digits after `fresco_k_` or `fresco_w_`, as
    /// `keys list` shows them).
    pub id: String,
}

fn parse_kind(value: &str) -> Result<CredentialKind, String> {
    value.parse()
}

fn parse_role(value: &str) -> Result<Role, String> {
    value.parse()
}

/// What `--kind`, `--tenant` and `--role` make together, refused naming
/// the flag when they do not fit.
pub fn scope(
    kind: CredentialKind,
    tenant: Option<String>,
    role: Option<Role>,
) -> anyhow::Result<KeyScope> {
    match (kind, tenant, role) {
        (CredentialKind::Client, Some(tenant), Some(role)) => {
            check_tenant(&tenant).map_err(|rule| anyhow::anyhow!("--tenant: {rule}"))?;
            Ok(KeyScope::Client { tenant, role })
        }
        (CredentialKind::Client, None, _) => {
            bail!("--tenant: a client key needs one (e.g. --tenant default)")
        }
        (CredentialKind::Client, _, None) => {
            bail!("--role: a client key needs one: admin, submitter or viewer")
        }
        (CredentialKind::Worker, None, None) => Ok(KeyScope::Worker),
        (CredentialKind::Worker, ..) => {
            bail!("--tenant, --role: a worker token has no tenant or role")
        }
    }
}

/// Makes a key of `scope` named `name` and stores its digest; returns the
/// stored record and the key, to be shown once.
pub async fn create(
    store: &dyn JobStore,
    scope: KeyScope,
    name: &str,
) -> anyhow::Result<(ApiKey, IssuedKey)> {
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        bail!(
            "--name: must be at most {MAX_NAME_CHARS} characters, none of them control characters"
        );
    }
    let issued = IssuedKey::generate(scope.kind())?;
    let stored = store
        .create_api_key(&NewApiKey {
            id: issued.id.clone(),
            scope,
            name: name.to_owned(),
            secret_sha256: issued.sha256(),
        })
        .await
        .context("storing the key")?;
    info!(key_id = %stored.id, kind = stored.scope.kind().as_str(), "key created");
    Ok((stored, issued))
}

/// Revokes the key `id`; returns it.
pub async fn revoke(store: &dyn JobStore, id: &str) -> anyhow::Result<ApiKey> {
    let revoked = store.revoke_api_key(id).await?;
    info!(key_id = %id, "key revoked");
    Ok(revoked)
}

/// Runs one `keys` command against `store`, printing what it did.
pub async fn run(store: &dyn JobStore, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create(args) => {
            let scope = scope(args.kind, args.tenant, args.role)?;
            let (stored, issued) = create(store, scope, &args.name).await?;
            if args.json {
                let mut json = key_json(&stored);
                json["key"] = issued.key.into();
                println!("{json}");
            } else {
                println!("{}", issued.key);
                eprintln!(
                    "created {}; the key above is shown only now",
                    describe(&stored)
                );
            }
        }
        KeysCommand::List(args) => {
            let keys = store.list_api_keys().await?;
            if args.json {
                let all: Vec<_> = keys.iter().map(key_json).collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                print_table(&keys);
            }
        }
        KeysCommand::Revoke(args) => {
            let revoked = revoke(store, &args.id).await?;
            println!("revoked {}", describe(&revoked));
        }
    }
    Ok(())
}

/// `client key ID (tenant T, role R)` or `worker token ID`.
fn describe(key: &ApiKey) -> String {
    match &key.scope {
        KeyScope::Client { tenant, role } => {
            format!("client key {} (tenant {tenant}, role {role})", key.id)
        }
        KeyScope::Worker => format!("worker token {}", key.id),
    }
}

/// A key as `--json` prints it (never its digest).
pub fn key_json(key: &ApiKey) -> serde_json::Value {
    let (tenant, role) = match &key.scope {
        KeyScope::Client { tenant, role } => (Some(tenant.as_str()), Some(role.as_str())),
        KeyScope::Worker => (None, None),
    };
    serde_json::json!({
        "id": key.id,
        "kind": key.scope.kind().as_str(),
        "tenant": tenant,
        "role": role,
        "name": key.name,
        "created_at": key.created_at.to_rfc3339(),
        "revoked_at": key.revoked_at.map(|at| at.to_rfc3339()),
    })
}

fn print_table(keys: &[ApiKey]) {
    println!(
        "{:<12}  {:<6}  {:<16}  {:<9}  {:<20}  {:<20}  NAME",
        "ID", "KIND", "TENANT", "ROLE", "CREATED", "REVOKED"
    );
    let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    for key in keys {
        let (tenant, role) = match &key.scope {
            KeyScope::Client { tenant, role } => (tenant.as_str(), role.as_str()),
            KeyScope::Worker => ("-", "-"),
        };
        println!(
            "{:<12}  {:<6}  {:<16}  {:<9}  {:<20}  {:<20}  {}",
            key.id,
            key.scope.kind().as_str(),
            tenant,
            role,
            time(key.created_at),
            key.revoked_at.map(time).unwrap_or_else(|| "-".into()),
            key.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_of_a_key_must_fit_its_kind() {
        let client = scope(
            CredentialKind::Client,
            Some("team-a".into()),
            Some(Role::Viewer),
        )
        .expect("a client key");
        assert_eq!(
            client,
            KeyScope::Client {
                tenant: "team-a".into(),
                role: Role::Viewer
            }
        );
        assert_eq!(
            scope(CredentialKind::Worker, None, None).expect("a worker token"),
            KeyScope::Worker
        );
        let refused = |kind, tenant: Option<&str>, role| {
            scope(kind, tenant.map(str::to_owned), role)
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            refused(CredentialKind::Client, None, Some(Role::Admin)),
            "--tenant: a client key needs one (e.g. --tenant default)"
        );
        assert_eq!(
            refused(CredentialKind::Client, Some("a"), None),
            "--role: a client key needs one: admin, submitter or viewer"
        );
        assert_eq!(
            refused(CredentialKind::Worker, Some("a"), None),
            "--tenant, --role: a worker token has no tenant or role"
        );
        assert_eq!(
            refused(CredentialKind::Client, Some("a b"), Some(Role::Admin)),
            "--tenant: must be letters, digits, '.', '_' or '-' (got \"a b\")"
        );
    }
}
