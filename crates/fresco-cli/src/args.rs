//! The `fresco` commands and their flags. Every flag also reads
//! `FRESCO_<FLAG>` where that makes sense for scripts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "fresco",
    version,
    about = "Submit and follow image generation jobs on a fresco farm"
)]
pub struct Cli {
    /// The coordinator's gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "FRESCO_COORDINATOR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub coordinator: String,
    /// The client key sent with every call (`fresco-coordinator keys
    /// create --kind client ...`); none for a farm served without keys.
    #[arg(long, global = true, env = "FRESCO_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// PEM CA certificate(s) to trust for an https:// coordinator, instead
    /// of the system's roots.
    #[arg(long, global = true, env = "FRESCO_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Submit a job: prompts from flags and/or a file; prints the job id.
    /// `--seeds`, `--size` or a list of guidance, steps or samplers makes it
    /// a sweep: one task for every combination.
    Submit(SubmitArgs),
    /// Show a job: counts by state, throughput, why it waits, its first
    /// failed and running tasks, and a page of its tasks (`--tasks`,
    /// `--from-index`) with their state and output keys.
    Status(StatusArgs),
    /// List recent jobs, newest first.
    List(ListArgs),
    /// Follow a job's progress until it finishes.
    Watch(JobArgs),
    /// Cancel every unfinished task of a job, or one task (--task).
    Cancel(CancelArgs),
    /// Queue a job's failed tasks again (their error history is kept).
    Retry(JobArgs),
    /// Stop handing out a job's queued tasks; running ones finish.
    Pause(JobArgs),
    /// Hand out a paused job's tasks again.
    Resume(JobArgs),
    /// Change a job's priority (higher runs first): its queued tasks move
    /// to their new place in the queue at once.
    Priority(PriorityArgs),
    /// Fetch every image of a job into a directory.
    Download(DownloadArgs),
    /// Render one image again: submit exactly the parameters that made it
    /// (one task, one image, the image's own seed), from its PNG or from
    /// the job's record.
    Regen(RegenArgs),
    /// Print a job's manifest: a row per image with its prompt, every
    /// parameter, the seed that makes it alone, the model's weights hash,
    /// its key, size and SHA-256, and the worker, device, attempt and
    /// times that made it; a row per failed or cancelled task with its
    /// errors.
    Manifest(ManifestArgs),
    /// List the farm's workers: models, loaded models, running tasks, and
    /// why a quarantined worker was quarantined; `workers release ID` puts a
    /// quarantined worker on probation.
    Workers(WorkersArgs),
    /// Show a tenant's use of the farm against its limits: tasks queued
    /// and running, device-seconds today (UTC) and in all.
    Usage(UsageArgs),
    /// Run the whole farm in this process (embedded store, local files, CPU
    /// workers), serving the same API; with --submit, render a prompts file
    /// and exit.
    #[cfg(feature = "dev")]
    Dev(DevArgs),
}

/// Numeric flags take negative numbers as values, so `--width -64` is
/// refused as an invalid width rather than as an unknown flag.
#[derive(Debug, Default, Args)]
pub struct SubmitArgs {
    /// Model id (default: the farm's default model, fresco-shapes).
    #[arg(long, env = "FRESCO_MODEL")]
    pub model: Option<String>,
    /// A prompt; repeat for several tasks.
    #[arg(long = "prompt", short = 'p')]
    pub prompts: Vec<String>,
    /// A prompts file: .txt (a prompt a line), .jsonl or .csv (parameters per line).
    #[arg(long)]
    pub prompts_file: Option<PathBuf>,
    /// Images per task.
    #[arg(short = 'n', long = "images", allow_negative_numbers = true)]
    pub n: Option<u32>,
    /// Sampling steps; a list (`20,30`) sweeps them.
    #[arg(long, allow_negative_numbers = true, value_delimiter = ',')]
    pub steps: Vec<u32>,
    /// Seed of every task that names none (default: a random one per task).
    #[arg(long, allow_negative_numbers = true, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// Sweep these seeds: seeds and inclusive ranges, e.g. `1-8`, `1,5,9`
    /// or `1-4,10`.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::sweep::seeds)]
    pub seeds: Option<crate::sweep::Seeds>,
    #[arg(long, allow_negative_numbers = true, conflicts_with = "sizes")]
    pub width: Option<u32>,
    #[arg(long, allow_negative_numbers = true, conflicts_with = "sizes")]
    pub height: Option<u32>,
    /// Sweep these image sizes, WIDTHxHEIGHT each: `512x512,768x512`.
    #[arg(
        long = "size",
        value_name = "WIDTHxHEIGHT",
        value_delimiter = ',',
        allow_hyphen_values = true,
        value_parser = crate::sweep::size
    )]
    pub sizes: Vec<fresco_core::sweep::Size>,
    /// Classifier-free guidance scale; a list (`3,5,7.5`) sweeps them.
    #[arg(long, allow_negative_numbers = true, value_delimiter = ',')]
    pub guidance: Vec<f32>,
    #[arg(long)]
    pub negative_prompt: Option<String>,
    /// Sampler: euler, heun, ddim, ddpm, euler_a, dpmpp_2m, dpmpp_2m_karras,
    /// unipc or flow_euler (which ones a model runs depends on the model);
    /// a list (`euler,dpmpp_2m`) sweeps them.
    #[arg(long, value_delimiter = ',')]
    pub sampler: Vec<String>,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// A name for the job.
    #[arg(long, default_value = "")]
    pub name: String,
    #[arg(long, env = "FRESCO_OWNER", default_value = "")]
    pub owner: String,
    /// Higher runs first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// Attempts per task before it fails for good (default 3).
    #[arg(long, allow_negative_numbers = true)]
    pub max_attempts: Option<u32>,
    /// Print a JSON object instead of the bare job id.
    #[arg(long)]
    pub json: bool,
    /// Wait until the job finishes; exit non-zero if any task failed.
    #[arg(long)]
    pub wait: bool,
    /// Idempotency key of this submission (default: a fresh one). Sending a
    /// submission again with the same key returns the job it stored.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Seconds to keep trying while the coordinator does not answer.
    #[arg(long, default_value_t = 60)]
    pub retry_seconds: u64,
    /// How long its tasks may wait in the queue, e.g. 90s, 45m, 2h, 1day:
    /// tasks still queued then fail (running ones finish). Default: the
    /// coordinator's queue timeout, if it sets one.
    #[arg(long, value_parser = deadline)]
    pub deadline: Option<std::time::Duration>,
    /// A label key=value kept with the job (repeat for several), e.g.
    /// --label project=catalog-2027; `fresco list --label` finds it.
    #[arg(long = "label", value_parser = fresco_core::labels::parse_label)]
    pub labels: Vec<(String, String)>,
}

/// A `--deadline`: a duration of at least one second, in whole seconds.
fn deadline(value: &str) -> Result<std::time::Duration, String> {
    let parsed = humantime::parse_duration(value)
        .map_err(|e| format!("{e}; give a duration such as 90s, 45m, 2h or 1day"))?;
    if parsed.as_secs() == 0 || parsed.subsec_nanos() != 0 {
        return Err(format!(
            "must be a whole number of seconds, at least 1s (got {value:?})"
        ));
    }
    Ok(parsed)
}

/// Sampler schedule knobs of every task that sets none itself; unset ones
/// keep the model's own scheduler config.
#[derive(Debug, Default, Clone, Args)]
pub struct ScheduleArgs {
    /// Training timesteps of the beta schedule.
    #[arg(long, allow_negative_numbers = true)]
    pub num_train_timesteps: Option<u32>,
    #[arg(long, allow_negative_numbers = true)]
    pub beta_start: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub beta_end: Option<f64>,
    /// linear, scaled_linear or squaredcos_cap_v2.
    #[arg(long)]
    pub beta_schedule: Option<String>,
    /// epsilon, v_prediction or sample.
    #[arg(long)]
    pub prediction_type: Option<String>,
    /// leading, trailing or linspace.
    #[arg(long)]
    pub timestep_spacing: Option<String>,
    /// Karras sigmas (true or false).
    #[arg(long)]
    pub karras_sigmas: Option<bool>,
    /// Flow-matching shift.
    #[arg(long, allow_negative_numbers = true)]
    pub flow_shift: Option<f64>,
    /// DDIM's eta (0 to 1).
    #[arg(long, allow_negative_numbers = true)]
    pub eta: Option<f64>,
}

#[derive(Debug, Args)]
pub struct JobArgs {
    pub job_id: String,
}

#[derive(Debug, Args)]
pub struct PriorityArgs {
    pub job_id: String,
    /// The new priority, within the bounds submit accepts.
    #[arg(allow_negative_numbers = true)]
    pub priority: i32,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The job whose unfinished tasks to cancel.
    #[arg(required_unless_present = "task", conflicts_with = "task")]
    pub job_id: Option<String>,
    /// Cancel only this task.
    #[arg(long)]
    pub task: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub job_id: String,
    #[arg(long)]
    pub json: bool,
    /// How many tasks to list, in index order from `--from-index`: a
    /// number, or `all` for every one (slow on a job of millions).
    #[arg(long, default_value = "20")]
    pub tasks: TaskCount,
    /// The index of the first task listed.
    #[arg(long, default_value_t = 0)]
    pub from_index: u32,
}

/// How many tasks `fresco status` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskCount {
    All,
    First(u32),
}

impl std::str::FromStr for TaskCount {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("all") {
            return Ok(TaskCount::All);
        }
        text.parse()
            .map(TaskCount::First)
            .map_err(|_| format!("expected a number of tasks or `all`, got {text:?}"))
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    #[arg(long, default_value = "")]
    pub owner: String,
    /// Every tenant's jobs, not only the key's own tenant's (an admin key).
    #[arg(long)]
    pub all_tenants: bool,
    /// Only jobs carrying this label key=value (repeat: all must match).
    #[arg(long = "label", value_parser = fresco_core::labels::parse_label)]
    pub labels: Vec<(String, String)>,
    /// Only jobs in this state: active (queued or running tasks), queued,
    /// running, paused, finished, succeeded, failed or cancelled.
    #[arg(long)]
    pub state: Option<fresco_core::JobState>,
    /// Only jobs of this model.
    #[arg(long, default_value = "")]
    pub model: String,
    /// Only jobs whose id starts with this text, or whose name or a task's
    /// prompt contains it (case-insensitive).
    #[arg(long, default_value = "")]
    pub search: String,
    /// The next page: the token an earlier `fresco list` printed.
    #[arg(long, default_value = "")]
    pub page_token: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Another tenant's (an admin key); the key's own tenant by default.
    #[arg(long, default_value = "")]
    pub tenant: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WorkersArgs {
    #[command(subcommand)]
    pub action: Option<WorkersAction>,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum WorkersAction {
    /// Put a quarantined worker on probation now, without waiting for its
    /// cool-down: it may claim one probe task; success returns it to
    /// service, failure quarantines it again.
    Release(ReleaseArgs),
    /// Drain a worker: it finishes the task it runs, claims nothing more
    /// and exits (status 0). Needs an admin key.
    Drain(ReleaseArgs),
}

#[derive(Debug, Args)]
// The worker `release` or `drain` acts on.
pub struct ReleaseArgs {
    /// The worker's id, as `fresco workers` shows it.
    pub worker_id: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    pub job_id: String,
    /// Directory to write the images into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Images fetched at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// File names under --out, from the fields {job}, {task}, {task_id},
    /// {image}, {seed}, {prompt_slug}, {model}, {sampler}, {steps},
    /// {guidance}, {width}, {height}; a width pads with zeros ({task:05}).
    #[arg(long, default_value = crate::commands::download::layout::DEFAULT)]
    pub layout: String,
    /// Only images of tasks that finished at or after this time: an RFC 3339
    /// time (2026-12-07T10:00:00Z) or a duration ago (90s, 10m, 2h).
    #[arg(long, value_parser = since)]
    pub since: Option<std::time::SystemTime>,
}

/// `--since`: an RFC 3339 time, or a duration before now.
fn since(value: &str) -> Result<std::time::SystemTime, String> {
    if let Ok(at) = humantime::parse_rfc3339_weak(value) {
        return Ok(at);
    }
    let ago = humantime::parse_duration(value).map_err(|_| {
        format!("{value:?} is neither an RFC 3339 time (2026-12-07T10:00:00Z) nor a duration (10m)")
    })?;
    std::time::SystemTime::now()
        .checked_sub(ago)
        .ok_or_else(|| format!("{value:?} reaches back before the clock's start"))
}

#[derive(Debug, Args)]
pub struct RegenArgs {
    /// The image: a PNG file fresco made, or its job id, its task (index in
    /// the job, or id) and its image index.
    #[arg(required = true, num_args = 1..=3, value_name = "FILE.png | JOB TASK IMAGE")]
    pub image: Vec<String>,
    /// Priority of the new job (higher runs first).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// Print a JSON object instead of the bare job id.
    #[arg(long)]
    pub json: bool,
    /// Wait until the image is rendered; exit non-zero if it failed.
    #[arg(long)]
    pub wait: bool,
    /// Seconds to keep trying while the coordinator does not answer.
    #[arg(long, default_value_t = 60)]
    pub retry_seconds: u64,
}

#[derive(Debug, Args)]
pub struct ManifestArgs {
    pub job_id: String,
    /// jsonl (the bucket's manifest.jsonl), csv or parquet.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: crate::tables::Format,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long = "output")]
    pub out: Option<PathBuf>,
}

#[cfg(feature = "dev")]
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the farm keeps its database and images.
    #[arg(
        long,
        env = "FRESCO_DATA_DIR",
        default_value = ".fresco",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Address to serve the gRPC API on.
    #[arg(long, env = "FRESCO_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: String,
    /// Workers sampling in this process.
    #[arg(long, env = "FRESCO_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// A directory of model folders to serve besides the built-in models.
    #[arg(long, env = "FRESCO_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// MiB of model weights each worker keeps loaded between tasks.
    #[arg(long, env = "FRESCO_CACHE_BUDGET_MB", default_value_t = 4096)]
    pub cache_budget_mb: u64,
    /// Seconds a quarantined worker waits before it goes on probation (one
    /// probe task: success returns it to service).
    #[arg(
        long,
        env = "FRESCO_QUARANTINE_COOLDOWN_SECONDS",
        default_value_t = 300
    )]
    pub quarantine_cooldown_seconds: u64,
    /// Render this prompts file (.txt, .jsonl or .csv), download the images
    /// and exit, instead of serving until Ctrl-C.
    #[arg(long)]
    pub submit: Option<PathBuf>,
    /// Model for --submit (default: the farm's default model, fresco-shapes).
    #[arg(long, env = "FRESCO_MODEL")]
    pub model: Option<String>,
    /// Directory for the images of --submit (default: out/<job id>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seconds a job's tasks may stay queued when the job sets no deadline
    /// of its own; tasks still queued then fail (0: no deadline).
    #[arg(long, env = "FRESCO_QUEUE_TIMEOUT_SECONDS", default_value_t = 0)]
    pub queue_timeout_seconds: u64,
    /// Seconds between sweeps that delete output files of attempts that
    /// ended without recording them (0: no sweeping).
    #[arg(long, env = "FRESCO_SWEEP_INTERVAL_SECONDS", default_value_t = 60)]
    pub sweep_interval_seconds: u64,
    /// Ask every caller for a key, checked against the keys in the data
    /// directory (`fresco dev keys create`), as a production coordinator
    /// does; required to --listen on other than a loopback address.
    #[arg(long, env = "FRESCO_DEV_AUTH")]
    pub auth: bool,
    /// Serve the farm's Prometheus metrics (the coordinator's and the
    /// workers') over plain HTTP on this address. Unset: none.
    #[arg(long, env = "FRESCO_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Serve the web dashboard on this address (with keys off, a loopback
    /// one). When the default is taken, a free port is used; the URL is
    /// printed.
    #[arg(long, env = "FRESCO_HTTP_LISTEN", default_value = fresco_dev::DEFAULT_HTTP_LISTEN)]
    pub http_listen: String,
    /// Serve no dashboard.
    #[arg(long)]
    pub no_dashboard: bool,
    #[command(subcommand)]
    pub keys: Option<DevCommand>,
}

#[cfg(feature = "dev")]
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Client keys and worker tokens of the dev farm in --data-dir (for
    /// `fresco dev --auth`): create, list, revoke.
    #[command(subcommand)]
    Keys(fresco_dev::KeysCommand),
    /// Tenants' weights and limits of the dev farm in --data-dir: set,
    /// list.
    #[command(subcommand)]
    Tenants(fresco_dev::TenantsCommand),
}
