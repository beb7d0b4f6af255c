//! Who is calling: the kinds of credential, a client key's role, the
//! tenant a job belongs to, and what each role may do.

use std::fmt;
use std::str::FromStr;

/// The tenant of every job on a farm served without keys (`fresco dev`,
/// `--insecure-no-auth`), and of jobs stored before tenants existed.
pub const DEFAULT_TENANT: &str = "default";

/// The longest tenant name.
pub const MAX_TENANT_LEN: usize = 64;

/// A tenant name's rule: 1 to 64 ASCII letters, digits, '.', '_' or '-'.
/// Returns the rule broken, for a message naming the flag or field.
pub fn check_tenant(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_TENANT_LEN {
        return Err(format!(
            "must be 1 to {MAX_TENANT_LEN} characters (got {})",
            name.chars().count()
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "must be letters, digits, '.', '_' or '-' (got {name:?})"
        ));
    }
    Ok(())
}

/// What a client key may do, within its tenant (`Admin`: in every tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reads its tenant's jobs, tasks, outputs and usage.
    Viewer,
    /// A viewer that also submits, cancels, retries, pauses and resumes.
    Submitter,
    /// Everything, in every tenant, and the farm's workers.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Submitter => "submitter",
            Role::Admin => "admin",
        }
    }

    /// Whether this role includes everything `needed` may do.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "submitter" => Ok(Role::Submitter),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}: one of admin, submitter, viewer"
            )),
        }
    }
}

/// The two kinds of credential: they open different services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// A client key: `JobService`, for its tenant and role.
    Client,
    /// A worker token: `WorkerService` only.
    Worker,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Client => "client",
            CredentialKind::Worker => "worker",
        }
    }
}

impl FromStr for CredentialKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client" => Ok(CredentialKind::Client),
            "worker" => Ok(CredentialKind::Worker),
            other => Err(format!(
                "unknown credential kind {other:?}: client or worker"
            )),
        }
    }
}

/// The caller of one request, as authentication found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A client key (or, on a farm without keys, everyone: an admin of
    /// [`DEFAULT_TENANT`] with no key id).
    Client {
        key_id: Option<String>,
        tenant: String,
        role: Role,
    },
    /// A worker token (no key id on a farm without keys).
    Worker { key_id: Option<String> },
}

impl Caller {
    /// Who calls a farm served without keys: an admin of the default
    /// tenant.
    pub fn unauthenticated_client() -> Self {
        Caller::Client {
            key_id: None,
            tenant: DEFAULT_TENANT.to_owned(),
            role: Role::Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_include_the_ones_below() {
        assert!(Role::Admin.allows(Role::Submitter));
        assert!(Role::Submitter.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Submitter));
        assert!(!Role::Submitter.allows(Role::Admin));
    }

    #[test]
    fn tenant_names_are_short_and_plain() {
        assert_eq!(check_tenant("team-a.render_1"), Ok(()));
        assert_eq!(
            check_tenant(""),
            Err("must be 1 to 64 characters (got 0)".into())
        );
        assert_eq!(
            check_tenant(&"t".repeat(65)),
            Err("must be 1 to 64 characters (got 65)".into())
        );
        assert_eq!(
            check_tenant("a b"),
            Err("must be letters, digits, '.', '_' or '-' (got \"a b\")".into())
        );
    }

    #[test]
    fn roles_and_kinds_parse_back() {
        for role in [Role::Viewer, Role::Submitter, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
        assert_eq!("worker".parse(), Ok(CredentialKind::Worker));
    }
}
