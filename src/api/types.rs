//! The control API's wire types: what the server sends and the CLI reads. Types owned by
//! other modules that travel as they are (the plan, diagnostics, log lines, events) are
//! re-exported here, so this is the one place to look for the API's vocabulary.

use serde::{Deserialize, Serialize};

use crate::config::RunState;
use crate::names::InstanceKey;
use crate::observed::{ExitInfo, Health, Phase, Usage};

pub use crate::config::Diagnostic;
pub use crate::desired::Selector;
pub use crate::events::Event;
pub use crate::plan::Plan;
pub use crate::runtime::logs::{LogLine, Stream};
pub use crate::tls::status::{CertFacts, CertState, CertView};

/// Version of these documents; bumped on incompatible changes.
pub const API_VERSION: u32 = 1;

/// One row of `ten ps`: every declared instance, and any still running undeclared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    pub instance: InstanceKey,
    pub service: String,
    pub id: String,
    /// Declared state; `None` for an instance being destroyed.
    pub state: Option<RunState>,
    pub phase: Phase,
    pub pid: Option<u32>,
    pub port: Option<u16>,
    /// Where the app listens: `127.0.0.1:PORT` or the socket path.
    pub listen: Option<String>,
    pub health: Health,
    pub weight: u8,
    /// A worker (`listen = "none"`): it takes no HTTP traffic, so its weight means nothing.
    #[serde(default)]
    pub worker: bool,
    pub uptime_secs: Option<u64>,
    pub restarts: u32,
    pub last_exit: Option<ExitInfo>,
    pub note: Option<String>,
    pub declared_in: Option<String>,
    /// What it uses, sampled with its health checks (running instances only).
    #[serde(default)]
    pub usage: Option<Usage>,
    /// How long the last request that had to wait for it (to wake, start or restart) waited,
    /// in microseconds: its last wake latency as a client saw it. None yet: no request waited
    /// since ten started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_wake_micros: Option<u64>,
}

/// `GET /api/status`: the server and the state of its configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    pub api_version: u32,
    pub ten_version: String,
    pub config: String,
    /// False while the files have errors (the last valid configuration keeps running).
    pub valid: bool,
    pub diagnostics: Vec<Diagnostic>,
    /// Instances kept at their last valid declaration because their file is broken.
    pub frozen: Vec<InstanceKey>,
    /// Why changes are not being applied automatically, when they are not.
    pub held: Option<String>,
    pub auto_apply: bool,
    pub generation: u64,
    pub instances: usize,
    pub instances_dir: String,
    pub data_dir: String,
    /// ten's own files it cannot write now (a full disk): what, why, since when. Each is
    /// tried again until it is written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write_errors: Vec<WriteError>,
}

/// A kind of durable write that fails now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteError {
    /// `record` or `process_table`.
    pub file: String,
    /// What it is, for a reader.
    pub what: String,
    pub error: String,
    pub since_unix: u64,
    /// Writes that failed since the last success.
    pub failures: u64,
}

/// `GET /api/plan`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanView {
    pub plan: Plan,
    pub diagnostics: Vec<Diagnostic>,
    pub held: Option<String>,
}

/// `POST /api/apply` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// Apply only if the plan still has this token (`ten apply --check TOKEN`).
    #[serde(default)]
    pub token: Option<String>,
}

/// One line of the `POST /api/apply` response stream (newline-delimited JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApplyProgress {
    /// The plan being applied.
    Started { token: String, changes: usize },
    /// One change is done (or failed).
    Done {
        target: String,
        action: String,
        ok: bool,
        message: String,
        elapsed_ms: u64,
    },
    /// All changes are done.
    Finished { ok: usize, failed: usize },
}

/// `POST /api/instances/spawn` body (the original's names).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnRequest {
    /// The service (the original calls it a process).
    pub process: String,
    pub id: String,
}

/// `POST /api/instances/stop`, `/start` and `/restart` body: which instances (`SERVICE:ID`,
/// a service, a group or all), and for a restart, whether to SIGKILL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub select: Selector,
    #[serde(default)]
    pub force: bool,
}

/// The answer of a bulk stop, start or restart: one outcome per instance selected, in key
/// order. Answered 200 even when some failed (`failed`); `held` says why nothing was applied
/// yet, when so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkResult {
    pub select: Selector,
    /// `stop`, `start` or `restart`.
    pub action: String,
    pub instances: Vec<BulkOutcome>,
    pub ok: usize,
    pub failed: usize,
    pub held: Option<String>,
}

/// What came of one instance of a bulk command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkOutcome {
    pub instance: InstanceKey,
    pub ok: bool,
    /// Left as it is, and why is in `message` (a restart of one declared stopped or asleep):
    /// not a failure, and not done either.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    pub message: String,
    /// The instance file written, if any.
    pub file: Option<String>,
    pub view: Option<InstanceView>,
}

/// `POST /api/instances/{S:ID}/restart` body (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartRequest {
    /// SIGKILL instead of the stop signal: the instance restarts at once.
    #[serde(default)]
    pub force: bool,
}

/// The answer of commands that act on one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    pub instance: InstanceKey,
    /// What was done, for humans ("declared in instances/notes/carol.toml and started").
    pub message: String,
    /// The instance file that was written or removed, if any.
    pub file: Option<String>,
    /// The instance once the action settled, if it still exists.
    pub view: Option<InstanceView>,
}

/// `GET /health` (public): `{"status": "ok"}`, as the original answers, and which config the
/// server serves, as a digest of its path (`server::config_id`): the CLI tells a server of
/// another project from a wrong token by it, and no path is shown to anyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthBody {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// `GET /api/instances/{S:ID}/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub instance: InstanceKey,
    /// It answered the check.
    pub healthy: bool,
    pub status: HealthVerdict,
    pub message: String,
    /// Why a sleeping instance is not running, when there is more to say than that it sleeps
    /// (its last wake failed; it was put to sleep for memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The outcome of `ten health`: `sleeping` is no failure (the instance is declared and
/// converged; nothing was checked, and it wakes on its next request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthVerdict {
    Healthy,
    Unhealthy,
    Sleeping,
}

/// Every error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default)]
    pub hint: Option<String>,
    #[serde(default)]
    pub diagnostics: Vec<Diagnostic>,
}

/// `PUT /api/instances/{S:ID}/weight` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightRequest {
    pub weight: u8,
}

/// `POST /api/deploy` body: declare `process:version`, wait until healthy, then give it
/// `weight` (100 unless said).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    pub process: String,
    pub version: String,
    #[serde(default)]
    pub weight: Option<u8>,
    /// Seconds to wait for health (default: the service's startup_timeout + 30 s).
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// `POST /api/route` body: move the traffic of `process` from instance `from` to `to`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    pub process: String,
    pub from: String,
    pub to: String,
}

/// `POST /api/tokens` body: without `tenant`, a new admin token (the old one stops working);
/// with `tenant`, a token for that instance only (replacing its previous one).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    #[serde(default)]
    pub tenant: Option<InstanceKey>,
}

/// `POST /api/tokens` answer (and `ten token-gen --json`). The token is shown this once: ten
/// keeps only its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token: String,
    /// `admin` or `tenant`.
    pub scope: String,
    /// The instance of a tenant token.
    pub instance: Option<InstanceKey>,
    /// Where the admin token was written (mode 0600); tenant tokens are written nowhere.
    pub file: Option<String>,
}

/// `GET /api/certs`: the certificates of HTTPS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertsView {
    /// Whether ten serves HTTPS (else `names` is empty).
    pub https: bool,
    /// The ACME directory certificates are ordered from.
    pub directory: Option<String>,
    pub names: Vec<CertView>,
}
