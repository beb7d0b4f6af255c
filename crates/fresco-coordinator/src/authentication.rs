//! Who is calling: the key a request presents (`authorization: Bearer
//! <key>`) checked against the store on every call, so a revocation holds
//! from the next call on, and turned into the [`Caller`] the handlers read.
//!
//! Every refusal says which check failed (no key, malformed, unknown id,
//! wrong secret, revoked) and never repeats the key. A credential of the
//! wrong kind for the service (a worker token on the client API, a client
//! key on the worker API) is refused as `Forbidden`. A farm served without
//! keys ([`Access::Open`]) takes every caller as an admin of the default
//! tenant, or as a worker.

use std::sync::Arc;

use fresco_core::{Caller, CredentialKind, credentials};
use fresco_store::{JobStore, KeyScope};
use tonic::codegen::http::HeaderMap;
use tracing::info;

use crate::error::{ApiError, ApiResult};

/// Whether the farm asks callers for keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Every call presents a client key or a worker token (the default).
    Keys,
    /// No keys: `--insecure-no-auth`, or `fresco dev` on loopback.
    Open,
}

/// Checks presented keys against the store.
#[derive(Clone)]
pub struct Authenticator {
    store: Arc<dyn JobStore>,
    access: Access,
}

/// The bearer key of a request's metadata.
fn bearer(headers: &HeaderMap) -> ApiResult<&str> {
    let value = headers.get("authorization").ok_or_else(|| {
        ApiError::Unauthenticated(
            "no API key: send the metadata `authorization: Bearer <key>`".into(),
        )
    })?;
    let malformed = || {
        ApiError::Unauthenticated(
            "malformed authorization metadata: expected `Bearer <key>`".into(),
        )
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, key) = text.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    Ok(key.trim())
}

impl Authenticator {
    pub fn new(store: Arc<dyn JobStore>, access: Access) -> Self {
        Self { store, access }
    }

    /// The caller of a request to `service` (the API a client key or a
    /// worker token opens) calling `method`, from its metadata.
    pub async fn caller(
        &self,
        headers: &HeaderMap,
        service: CredentialKind,
        method: &str,
    ) -> ApiResult<Caller> {
        if self.access == Access::Open {
            return Ok(match service {
                CredentialKind::Client => Caller::unauthenticated_client(),
                CredentialKind::Worker => Caller::Worker { key_id: None },
            });
        }
        let caller = self.check(bearer(headers)?).await?;
        opens(&caller, service, method)?;
        Ok(caller)
    }

    /// The caller a presented key stands for, once it is well formed,
    /// known, its secret right and not revoked.
    async fn check(&self, key: &str) -> ApiResult<Caller> {
        let presented =
            credentials::parse(key).map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
        let id = presented.id;
        let refused = |why: String| {
            info!(key_id = %id, reason = %why, "call refused: authentication failed");
            ApiError::Unauthenticated(why)
        };
        let Some(stored) = self.store.api_key(id).await? else {
            return Err(refused(format!("unknown key {id}")));
        };
        if !credentials::matches(presented.key, &stored.secret_sha256) {
            return Err(refused(format!("wrong secret for key {id}")));
        }
        if let Some(at) = stored.key.revoked_at {
            return Err(refused(format!(
                "key {id} was revoked at {}",
                at.format("%Y-%m-%d %H:%M:%S UTC")
            )));
        }
        let key_id = Some(stored.key.id);
        Ok(match stored.key.scope {
            KeyScope::Client { tenant, role } => Caller::Client {
                key_id,
                tenant,
                role,
            },
            KeyScope::Worker => Caller::Worker { key_id },
        })
    }
}

/// `Forbidden` unless `caller`'s credential opens `service`.
fn opens(caller: &Caller, service: CredentialKind, method: &str) -> ApiResult<()> {
    match (caller, service) {
        (Caller::Client { .. }, CredentialKind::Client)
        | (Caller::Worker { .. }, CredentialKind::Worker) => Ok(()),
        (Caller::Worker { .. }, CredentialKind::Client) => Err(ApiError::Forbidden(format!(
            "{method} needs a client key; a worker token opens only the worker API"
        ))),
        (Caller::Client { .. }, CredentialKind::Worker) => Err(ApiError::Forbidden(format!(
            "{method} needs a worker token; a client key opens only the client API"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::codegen::http::HeaderValue;

    fn headers(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_bytes(value).expect("a header value"),
        );
        headers
    }

    #[test]
    fn the_bearer_scheme_is_read_and_anything_else_is_malformed() {
        assert_eq!(bearer(&headers(b"Bearer abc")).ok(), Some("abc"));
        assert_eq!(bearer(&headers(b"bearer  abc ")).ok(), Some("abc"));
        for bad in [&b"Basic abc"[..], b"abc", b"Bearer\xff abc"] {
            let err = bearer(&headers(bad)).expect_err("malformed");
            assert_eq!(
                err.to_string(),
                "malformed authorization metadata: expected `Bearer <key>`"
            );
        }
        let none = bearer(&HeaderMap::new()).expect_err("no key");
        assert_eq!(
            none.to_string(),
            "no API key: send the metadata `authorization: Bearer <key>`"
        );
    }

    #[test]
    fn a_credential_opens_only_its_own_api() {
        let worker = Caller::Worker { key_id: None };
        let client = Caller::unauthenticated_client();
        assert!(opens(&worker, CredentialKind::Worker, "ClaimTask").is_ok());
        assert!(opens(&client, CredentialKind::Client, "GetJob").is_ok());
        assert_eq!(
            opens(&worker, CredentialKind::Client, "GetJob")
                .expect_err("a worker token on the client API")
                .to_string(),
            "GetJob needs a client key; a worker token opens only the worker API"
        );
        assert_eq!(
            opens(&client, CredentialKind::Worker, "ClaimTask")
                .expect_err("a client key on the worker API")
                .to_string(),
            "ClaimTask needs a worker token; a client key opens only the client API"
        );
    }
}
