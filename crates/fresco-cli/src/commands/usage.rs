//! `fresco usage`: a tenant's use of the farm against its limits.

use fresco_proto::v1 as pb;

use crate::args::UsageArgs;
use crate::client::Target;
use crate::{Failure, client};

pub async fn run(target: &Target, args: UsageArgs) -> Result<(), Failure> {
    let mut client = client::connect(target).await?;
    let usage = client
        .get_usage(pb::GetUsageRequest {
            tenant: args.tenant,
        })
        .await?
        .into_inner();
    if args.json {
        println!("{}", usage_json(&usage));
    } else {
        print!("{}", usage_text(&usage));
    }
    Ok(())
}

/// The usage as `--json` prints it (`null`: no limit).
fn usage_json(usage: &pb::Usage) -> serde_json::Value {
    serde_json::json!({
        "tenant": usage.tenant,
        "weight": usage.weight,
        "queued_tasks": usage.queued_tasks,
        "running_tasks": usage.running_tasks,
        "device_seconds_today": usage.device_seconds_today,
        "device_seconds_total": usage.device_seconds_total,
        "max_queued_tasks": usage.max_queued_tasks,
        "max_running_tasks": usage.max_running_tasks,
        "max_device_seconds_per_day": usage.max_device_seconds_per_day,
    })
}

/// `used` against `limit`: `3 of 10`, or `3 (no limit)`.
fn against(used: String, limit: Option<u64>) -> String {
    match limit {
        Some(limit) => format!("{used} of {limit}"),
        None => format!("{used} (no limit)"),
    }
}

fn usage_text(usage: &pb::Usage) -> String {
    format!(
        "tenant        {}\n\
         weight        {}\n\
         queued tasks  {}\n\
         running tasks {}\n\
         device-seconds today (UTC) {}\n\
         device-seconds in all      {:.3}\n",
        usage.tenant,
        usage.weight,
        against(usage.queued_tasks.to_string(), usage.max_queued_tasks),
        against(usage.running_tasks.to_string(), usage.max_running_tasks),
        against(
            format!("{:.3}", usage.device_seconds_today),
            usage.max_device_seconds_per_day
        ),
        usage.device_seconds_total,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_show_beside_the_use_and_no_limit_says_so() {
        let usage = pb::Usage {
            tenant: "team-a".into(),
            weight: 2,
            queued_tasks: 3,
            running_tasks: 1,
            device_seconds_today: 12.5,
            device_seconds_total: 40.25,
            max_queued_tasks: Some(10),
            max_running_tasks: None,
            max_device_seconds_per_day: Some(3600),
        };
        let text = usage_text(&usage);
        assert!(text.contains("queued tasks  3 of 10\n"), "{text}");
        assert!(text.contains("running tasks 1 (no limit)\n"), "{text}");
        assert!(
            text.contains("device-seconds today (UTC) 12.500 of 3600\n"),
            "{text}"
        );
        assert!(
            text.contains("device-seconds in all      40.250\n"),
            "{text}"
        );
        assert_eq!(
            usage_json(&usage)["max_running_tasks"],
            serde_json::Value::Null
        );
    }
}
