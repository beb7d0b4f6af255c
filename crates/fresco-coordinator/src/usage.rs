//! A tenant's consumption and limits, for `GetUsage`: the caller's own
//! tenant, or any tenant for an admin.

use fresco_core::access::check_tenant;
use fresco_core::{Caller, FieldError, Role};
use fresco_proto::v1 as pb;
use fresco_store::TenantUsage;

use crate::Coordinator;
use crate::error::{ApiError, ApiResult};
use crate::tenancy;

/// The `GetUsage` call.
pub async fn get_usage(
    app: &Coordinator,
    caller: &Caller,
    request: pb::GetUsageRequest,
) -> ApiResult<pb::Usage> {
    let tenant = tenant_asked(caller, &request.tenant)?;
    let usage = app.store.tenant_usage(&tenant).await?;
    Ok(usage_message(&usage))
}

/// The tenant `asked` names (empty: the caller's own); naming another one
/// needs the admin role.
fn tenant_asked(caller: &Caller, asked: &str) -> ApiResult<String> {
    let (own, role) = tenancy::client(caller, Role::Viewer, "GetUsage")?;
    if asked.is_empty() || asked == own {
        return Ok(own.to_owned());
    }
    check_tenant(asked).map_err(|rule| FieldError::new("tenant", rule))?;
    if role != Role::Admin {
        return Err(ApiError::Forbidden(format!(
            "GetUsage of another tenant needs the admin role; this key is a {role} of tenant {own}"
        )));
    }
    Ok(asked.to_owned())
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1_000.0
}

fn usage_message(usage: &TenantUsage) -> pb::Usage {
    let limits = &usage.limits;
    pb::Usage {
        tenant: usage.tenant.clone(),
        weight: limits.weight,
        queued_tasks: usage.queued_tasks,
        running_tasks: usage.running_tasks,
        device_seconds_today: seconds(usage.device_ms_today),
        device_seconds_total: seconds(usage.device_ms_total),
        max_queued_tasks: limits.max_queued_tasks,
        max_running_tasks: limits.max_running_tasks,
        max_device_seconds_per_day: limits.max_device_seconds_per_day,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(tenant: &str, role: Role) -> Caller {
        Caller::Client {
            tenant: tenant.into(),
            role,
            key_id: None,
        }
    }

    #[test]
    fn a_tenant_sees_its_own_usage_and_only_an_admin_another() {
        let viewer = client("team-a", Role::Viewer);
        assert_eq!(tenant_asked(&viewer, "").expect("own"), "team-a");
        assert_eq!(tenant_asked(&viewer, "team-a").expect("own"), "team-a");
        let refused = tenant_asked(&viewer, "team-b").expect_err("another tenant");
        assert!(matches!(refused, ApiError::Forbidden(_)), "{refused:?}");
        let admin = client("ops", Role::Admin);
        assert_eq!(tenant_asked(&admin, "team-b").expect("admin"), "team-b");
        let bad = tenant_asked(&admin, "a b").expect_err("bad name");
        assert!(matches!(bad, ApiError::Field(_)), "{bad:?}");
    }
}
