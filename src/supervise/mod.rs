//! `sanctuary supervise`: a long-running watch over one project. It follows the engine's
//! events (health, die, oom) and reconciles every `--interval`; restarts unhealthy containers
//! with backoff up to each service's `restart-limit`; runs scheduled backups (`every`) and
//! keeps `watch true` sync rules in sync, both through the same commands a user types;
//! sends alerts; and serves metrics.
//!
//! It takes the project's lock only while it changes something (briefly for a restart, for
//! the length of a backup), so `apply` from a terminal runs beside it. What the user stopped
//! on purpose is never started again. A transient failure (the engine going away, a lock
//! held, an alert endpoint down) is logged, shown as degraded and retried; it never ends
//! the supervisor.

pub mod metrics;
pub mod restarts;
pub mod status_file;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backend::{names, Backend, ContainerState, HealthState, LabelFilter};
use crate::manifest::{AlertEvent, Manifest};
use crate::observe::alerts::Alerter;
use crate::observe::events::{self, ProjectFilter, Watched};
use crate::state::stopped::stopped_on_purpose;
use crate::state::Lock;
use metrics::{label, Metrics};
use restarts::{Decision, Restarts};

/// How long a backup that found the lock held waits before it tries again.
const LOCKED_RETRY: Duration = Duration::from_secs(30);
/// The first pause after a scheduled backup failed; doubled per failure, up to an hour.
const FAILED_BACKUP_RETRY: Duration = Duration::from_secs(60);
/// The longest pause before a sync watch that ended is started again.
const MAX_SYNC_RESTART: Duration = Duration::from_secs(60);

/// How the supervisor runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often it reconciles without an event.
    pub interval: Duration,
    /// Where to serve metrics.
    pub metrics: Option<std::net::SocketAddr>,
    /// What availability is measured over.
    pub availability_window: Duration,
    pub json: bool,
    /// The program and global arguments that scheduled work runs with (`sanctuary -f …`).
    pub program: PathBuf,
    pub global_args: Vec<String>,
}

/// Work done on a task of its own, reported back to the loop.
enum Done {
    Restart {
        service: String,
        container: String,
        result: Result<(), RestartError>,
    },
    Backup {
        name: String,
        code: Option<i32>,
        output: String,
    },
}

enum RestartError {
    /// Someone else is changing the stack: try again shortly.
    Locked(String),
    /// The user stopped it on purpose meanwhile.
    StoppedOnPurpose,
    Failed(String),
}

/// Seconds a service was healthy within the window, from what was seen.
#[derive(Debug, Clone)]
struct Availability {
    window: Duration,
    /// Since the supervisor watched it: (when, healthy from then on), oldest first.
    changes: Vec<(Instant, bool)>,
}

impl Availability {
    fn new(window: Duration) -> Self {
        Availability {
            window,
            changes: Vec::new(),
        }
    }

    fn see(&mut self, now: Instant, healthy: bool) {
        if self.changes.last().map(|c| c.1) != Some(healthy) {
            self.changes.push((now, healthy));
        }
        // Keep one change from before the window: it says how the window began.
        let start = now.checked_sub(self.window);
        while let (Some(start), Some(second)) = (start, self.changes.get(1)) {
            if second.0 <= start {
                self.changes.remove(0);
            } else {
                break;
            }
        }
    }

    /// The healthy share of the part of the window that was watched.
    fn ratio(&self, now: Instant) -> Option<f64> {
        let first = self.changes.first()?.0;
        let start = now.checked_sub(self.window).map_or(first, |s| s.max(first));
        let total = now.duration_since(start).as_secs_f64();
        if total <= 0.0 {
            return Some(if self.changes.last()?.1 { 1.0 } else { 0.0 });
        }
        let mut healthy = 0.0;
        for (i, (at, up)) in self.changes.iter().enumerate() {
            let from = (*at).max(start);
            let to = self.changes.get(i + 1).map_or(now, |n| n.0).max(start);
            if *up {
                healthy += to.duration_since(from).as_secs_f64();
            }
        }
        Some(healthy / total)
    }
}

#[derive(Debug)]
struct ServiceWatch {
    restarts: Restarts,
    container_id: Option<String>,
    unhealthy: bool,
    restarting: bool,
    retry_at: Option<Instant>,
    availability: Availability,
}

#[derive(Debug, Default)]
struct BackupWatch {
    next_due: Option<DateTime<Utc>>,
    running: bool,
    failures: u32,
    /// When a failed or refused run is tried again, overriding the schedule.
    retry_at: Option<DateTime<Utc>>,
    /// When a scheduled run last succeeded here: the schedule counts from it too, for a
    /// backup whose snapshots cannot be listed locally (its first copy is a remote).
    last_success: Option<DateTime<Utc>>,
}

struct SyncWatch {
    rules: Vec<String>,
    child: Option<tokio::process::Child>,
    restart_at: Option<Instant>,
    restarts: u32,
    /// Each rule's last recorded pass seen, so a record is judged once.
    seen: BTreeMap<String, String>,
}

/// The supervisor of one project.
pub struct Supervisor {
    m: Arc<Manifest>,
    backend: Arc<dyn Backend>,
    alerter: Arc<Alerter>,
    pub metrics: Arc<Metrics>,
    opts: Options,
    services: BTreeMap<String, ServiceWatch>,
    backups: BTreeMap<String, BackupWatch>,
    sync: SyncWatch,
    done_tx: mpsc::UnboundedSender<Done>,
    engine_lost: Option<String>,
    started: DateTime<Utc>,
}

impl Supervisor {
    pub fn new(
        m: Arc<Manifest>,
        backend: Arc<dyn Backend>,
        metrics: Arc<Metrics>,
        opts: Options,
    ) -> (Self, Receiver) {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let services = m
            .services
            .values()
            .filter(|s| m.service_active(&s.name))
            .map(|s| {
                (
                    s.name.clone(),
                    ServiceWatch {
                        restarts: Restarts::new(s.restart_limit),
                        container_id: None,
                        unhealthy: false,
                        restarting: false,
                        retry_at: None,
                        availability: Availability::new(opts.availability_window),
                    },
                )
            })
            .collect();
        let backups = m
            .backups
            .keys()
            .map(|b| (b.clone(), BackupWatch::default()))
            .collect();
        let sync = SyncWatch {
            rules: m
                .syncs
                .values()
                .filter(|s| s.watch)
                .map(|s| s.name.clone())
                .collect(),
            child: None,
            restart_at: Some(Instant::now()),
            restarts: 0,
            seen: BTreeMap::new(),
        };
        let sup = Supervisor {
            alerter: Arc::new(Alerter::new(Arc::clone(&m))),
            m,
            backend,
            metrics,
            opts,
            services,
            backups,
            sync,
            done_tx,
            engine_lost: None,
            started: Utc::now(),
        };
        (sup, Receiver(done_rx))
    }

    /// One line about what the supervisor saw or did: plain text, or a JSON object.
    fn say(&self, event: &str, node: &str, text: &str) {
        if self.opts.json {
            println!(
                "{}",
                serde_json::json!({
                    "time": Utc::now().to_rfc3339(),
                    "event": event,
                    "node": node,
                    "message": text,
                })
            );
        } else {
            println!("{}  {text}", chrono::Local::now().format("%H:%M:%S"));
        }
    }

    /// Runs until `token` is cancelled (Ctrl-C, SIGTERM).
    pub async fn run(mut self, done: Receiver, token: CancellationToken) {
        let mut done = done.0;
        let filter = ProjectFilter::new(&self.m);
        let mut watched = events::watch(Arc::clone(&self.backend), filter, None, None);
        let mut tick = tokio::time::interval(self.opts.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.say(
            "started",
            "project",
            &format!(
                "supervising {} ({} service(s), {} scheduled backup(s), {} watched sync rule(s))",
                self.m.project.name,
                self.services.len(),
                self.m
                    .backups
                    .values()
                    .filter(|b| b.schedule.is_some())
                    .count(),
                self.sync.rules.len()
            ),
        );
        loop {
            let wake = self.next_wake();
            tokio::select! {
                _ = token.cancelled() => break,
                w = watched.next() => match w {
                    Some(w) => self.on_watched(w).await,
                    None => break,
                },
                _ = tick.tick() => self.reconcile().await,
                Some(d) = done.recv() => self.on_done(d).await,
                _ = tokio::time::sleep_until(wake.into()) => self.on_due().await,
            }
        }
        self.shut_down().await;
    }

    /// The earliest moment something is due: a backoff ending, a backup, a sync restart.
    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let far = now + Duration::from_secs(3600);
        let mut wake = far;
        for s in self.services.values() {
            if let Some(t) = s.retry_at {
                wake = wake.min(t);
            }
        }
        let utc_now = Utc::now();
        let at = |t: DateTime<Utc>| {
            now + (t - utc_now)
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(Duration::from_secs(3600))
        };
        // While a backup runs, the next waits for its end (which wakes the loop anyway).
        let backing_up = self.backups.values().any(|b| b.running);
        for b in self.backups.values().filter(|_| !backing_up) {
            if let Some(t) = b.retry_at.or(b.next_due) {
                wake = wake.min(at(t));
            }
        }
        if let Some(t) = self.sync.restart_at {
            if !self.sync.rules.is_empty() {
                wake = wake.min(t);
            }
        }
        wake.max(now)
    }

    async fn on_watched(&mut self, w: Watched) {
        match w {
            Watched::Event(ev) if ev.event.kind == "container" => {
                let Some(service) = ev
                    .node
                    .as_deref()
                    .and_then(|n| n.strip_prefix("service."))
                    .map(str::to_string)
                else {
                    return;
                };
                if !self.services.contains_key(&service) {
                    return;
                }
                let action = ev.event.action.as_str();
                match action {
                    "health_status: unhealthy" => {
                        self.on_health(&service, &ev.object, HealthState::Unhealthy)
                            .await
                    }
                    "health_status: healthy" => {
                        self.on_health(&service, &ev.object, HealthState::Healthy)
                            .await
                    }
                    "oom" => self.say(
                        "oom",
                        &format!("service.{service}"),
                        &format!("{service}: killed for lack of memory"),
                    ),
                    "die" => {
                        let code = ev.details().get("exitCode").map(|c| c.to_string());
                        self.say(
                            "die",
                            &format!("service.{service}"),
                            &format!(
                                "{service}: exited{}",
                                code.map(|c| format!(" with {c}")).unwrap_or_default()
                            ),
                        );
                    }
                    _ => {}
                }
            }
            Watched::Event(_) => {}
            Watched::Lost(why) => {
                // Recorded before it is said, so whoever reads the line finds the record.
                self.engine_lost = Some(why.clone());
                self.metrics.degraded.get_or_create(&vec![]).set(1.0);
                self.write_status();
                self.alerter.raise(AlertEvent::EngineLost, "project", &why);
                self.say(
                    "engine-lost",
                    "project",
                    &format!("the engine went away: {why}"),
                );
            }
            Watched::Back => {
                self.engine_lost = None;
                self.alerter.clear(
                    AlertEvent::EngineLost,
                    "project",
                    "the engine answers again",
                );
                self.reconcile().await;
                self.say("engine-back", "project", "the engine answers again");
            }
        }
    }

    /// A service's health as an event or a reconcile saw it.
    async fn on_health(&mut self, service: &str, container: &str, health: HealthState) {
        let node = format!("service.{service}");
        let Some(w) = self.services.get_mut(service) else {
            return;
        };
        match health {
            HealthState::Unhealthy => {
                if stopped_on_purpose(&self.m.project.state_dir).contains(service) {
                    return;
                }
                let first = !w.unhealthy;
                w.unhealthy = true;
                w.availability.see(Instant::now(), false);
                if first {
                    let reason = self.health_output(container).await;
                    self.say(
                        "unhealthy",
                        &node,
                        &format!("{service}: unhealthy ({reason})"),
                    );
                    self.alerter.raise(AlertEvent::Unhealthy, &node, &reason);
                }
                self.consider_restart(service, container);
            }
            HealthState::Healthy => {
                let was = w.unhealthy || w.restarts.gave_up();
                w.unhealthy = false;
                w.retry_at = None;
                w.restarts.recovered();
                w.availability.see(Instant::now(), true);
                if was {
                    self.say("recovered", &node, &format!("{service}: healthy again"));
                    self.alerter.clear(AlertEvent::Unhealthy, &node, "healthy");
                    self.alerter
                        .clear(AlertEvent::RestartLimit, &node, "healthy");
                }
            }
            _ => {}
        }
    }

    /// The last health check's output, for people.
    async fn health_output(&self, container: &str) -> String {
        match self.backend.inspect_container(container).await {
            Ok(Some(info)) => info
                .health_output
                .last()
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty())
                .unwrap_or_else(|| "its health check failed".into()),
            _ => "its health check failed".into(),
        }
    }

    fn consider_restart(&mut self, service: &str, container: &str) {
        let node = format!("service.{service}");
        let Some(w) = self.services.get_mut(service) else {
            return;
        };
        if w.restarting {
            return;
        }
        let limit = w.restarts.limit();
        match w.restarts.decide(Instant::now()) {
            Decision::Wait(at) => w.retry_at = Some(at),
            Decision::GiveUp { newly } => {
                w.retry_at = None;
                if newly {
                    let why = format!(
                        "{} restarts within {} did not make it healthy",
                        limit.count, limit.within
                    );
                    self.say(
                        "restart-limit",
                        &node,
                        &format!("{service}: giving up, {why}"),
                    );
                    self.alerter.raise(AlertEvent::RestartLimit, &node, &why);
                }
            }
            Decision::Restart { n } => {
                w.retry_at = None;
                w.restarting = true;
                self.say(
                    "restarting",
                    &node,
                    &format!(
                        "{service}: restarting (restart {n} of at most {} within {})",
                        limit.count, limit.within
                    ),
                );
                self.spawn_restart(service, container);
            }
        }
    }

    fn spawn_restart(&self, service: &str, container: &str) {
        let backend = Arc::clone(&self.backend);
        let state_dir = self.m.project.state_dir.clone();
        let stop_timeout = self
            .m
            .services
            .get(service)
            .map_or(Duration::from_secs(10), |s| s.stop_timeout.0);
        let tx = self.done_tx.clone();
        let service = service.to_string();
        let container = container.to_string();
        tokio::spawn(async move {
            let command = format!("supervise: restart {service}");
            let dir = state_dir.clone();
            let lock =
                tokio::task::spawn_blocking(move || Lock::acquire_brief(&dir, &command)).await;
            let result = match lock {
                Ok(Ok(lock)) => {
                    // Stopped on purpose while this waited: leave it.
                    let r = if stopped_on_purpose(&state_dir).contains(&service) {
                        Err(RestartError::StoppedOnPurpose)
                    } else {
                        match backend.stop_container(&container, stop_timeout).await {
                            Ok(()) => backend
                                .start_container(&container)
                                .await
                                .map_err(|e| RestartError::Failed(crate::exec::chain(&e))),
                            Err(e) => Err(RestartError::Failed(crate::exec::chain(&e))),
                        }
                    };
                    drop(lock);
                    r
                }
                Ok(Err(e)) => Err(RestartError::Locked(e.to_string())),
                Err(e) => Err(RestartError::Failed(e.to_string())),
            };
            let _ = tx.send(Done::Restart {
                service,
                container,
                result,
            });
        });
    }

    async fn on_done(&mut self, done: Done) {
        match done {
            Done::Restart {
                service,
                container,
                result,
            } => {
                let node = format!("service.{service}");
                let Some(w) = self.services.get_mut(&service) else {
                    return;
                };
                w.restarting = false;
                match result {
                    Ok(()) => {
                        w.restarts.restarted(Instant::now());
                        self.metrics
                            .service_restarts
                            .get_or_create(&label("service", &service))
                            .inc();
                        self.say("restarted", &node, &format!("{service}: restarted"));
                    }
                    Err(RestartError::StoppedOnPurpose) => {
                        w.unhealthy = false;
                        self.say(
                            "skipped",
                            &node,
                            &format!("{service}: stopped on purpose; not restarted"),
                        );
                    }
                    Err(RestartError::Locked(why)) => {
                        w.retry_at = Some(Instant::now() + Duration::from_secs(2));
                        tracing::info!(%service, "restart waits: {why}");
                    }
                    Err(RestartError::Failed(why)) => {
                        w.retry_at = Some(Instant::now() + Duration::from_secs(5));
                        self.say(
                            "restart-failed",
                            &node,
                            &format!("{service}: cannot restart {container}: {why}"),
                        );
                    }
                }
            }
            Done::Backup { name, code, output } => {
                let node = format!("backup.{name}");
                let Some(w) = self.backups.get_mut(&name) else {
                    return;
                };
                w.running = false;
                match code {
                    Some(0) => {
                        w.failures = 0;
                        w.retry_at = None;
                        w.last_success = Some(Utc::now());
                        // Recomputed from the new snapshot by the reconcile below.
                        w.next_due = None;
                        self.say("backup-done", &node, &format!("backup {name}: done"));
                        self.alerter
                            .clear(AlertEvent::BackupFailed, &node, "succeeded");
                        self.reconcile().await;
                    }
                    // The lock was held (an apply, a restore): not a failure of the backup.
                    Some(4) if output.contains("another sanctuary is running") => {
                        w.retry_at = Some(
                            Utc::now()
                                + chrono::Duration::from_std(LOCKED_RETRY).unwrap_or_default(),
                        );
                        self.say(
                            "backup-waits",
                            &node,
                            &format!(
                                "backup {name}: the project is busy; trying again in {}s",
                                LOCKED_RETRY.as_secs()
                            ),
                        );
                    }
                    _ => {
                        w.failures += 1;
                        let pause = (FAILED_BACKUP_RETRY * (1u32 << (w.failures - 1).min(6)))
                            .min(Duration::from_secs(3600));
                        w.retry_at = Some(
                            Utc::now() + chrono::Duration::from_std(pause).unwrap_or_default(),
                        );
                        let reason = last_line(&output).unwrap_or_else(|| match code {
                            Some(c) => format!("exited with {c}"),
                            None => "was killed".into(),
                        });
                        self.metrics
                            .backup_failures
                            .get_or_create(&label("backup", &name))
                            .inc();
                        self.say(
                            "backup-failed",
                            &node,
                            &format!(
                                "backup {name}: failed ({reason}); trying again in {}",
                                humantime::format_duration(pause)
                            ),
                        );
                        self.alerter.raise(AlertEvent::BackupFailed, &node, &reason);
                    }
                }
            }
        }
    }

    /// Whatever came due: restarts after their backoff, scheduled backups, a sync watch to
    /// start again.
    async fn on_due(&mut self) {
        let now = Instant::now();
        let waiting: Vec<String> = self
            .services
            .iter()
            .filter(|(_, w)| w.retry_at.is_some_and(|t| t <= now))
            .map(|(s, _)| s.clone())
            .collect();
        for service in waiting {
            if let Some(w) = self.services.get_mut(&service) {
                w.retry_at = None;
            }
            let container = names::container(&self.m.project.name, &service);
            let container = self.live_container(&service).await.unwrap_or(container);
            self.consider_restart(&service, &container);
        }
        let utc_now = Utc::now();
        let due: Vec<String> = self
            .backups
            .iter()
            .filter(|(_, w)| !w.running && w.retry_at.or(w.next_due).is_some_and(|t| t <= utc_now))
            .map(|(b, _)| b.clone())
            .collect();
        // One at a time: each takes the project's lock for its length, and two at once would
        // only find each other holding it.
        if !self.backups.values().any(|w| w.running) {
            if let Some(name) = due.first() {
                self.spawn_backup(name);
            }
        }
        if self.sync.restart_at.is_some_and(|t| t <= now) {
            self.sync.restart_at = None;
            self.start_sync_watch();
        }
    }

    /// The container that runs `service` now (a blue-green one's live colour).
    async fn live_container(&self, service: &str) -> Option<String> {
        let filter = LabelFilter::new()
            .with(names::LABEL_PROJECT, self.m.project.name.clone())
            .with(names::LABEL_NODE, format!("service.{service}"));
        let found = self.backend.list_containers(&filter, false).await.ok()?;
        found
            .into_iter()
            .find(|c| c.state == ContainerState::Running)
            .map(|c| c.name)
    }

    fn child(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.opts.program);
        c.args(&self.opts.global_args).args(args);
        c
    }

    fn spawn_backup(&mut self, name: &str) {
        let Some(w) = self.backups.get_mut(name) else {
            return;
        };
        w.running = true;
        w.retry_at = None;
        let node = format!("backup.{name}");
        self.say(
            "backup-started",
            &node,
            &format!("backup {name}: started (scheduled)"),
        );
        let mut cmd = self.child(&["backup", name]);
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let tx = self.done_tx.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let (code, output) = match cmd.output().await {
                Ok(o) => (
                    o.status.code(),
                    format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    ),
                ),
                Err(e) => (Some(127), format!("cannot run the backup: {e}")),
            };
            let _ = tx.send(Done::Backup { name, code, output });
        });
    }

    /// `sanctuary sync RULE… --watch` for the `watch true` rules, as a child of its own: its
    /// passes take the lock one at a time, and it is started again if it ends.
    fn start_sync_watch(&mut self) {
        if self.sync.rules.is_empty() {
            return;
        }
        let mut args: Vec<&str> = vec!["sync"];
        args.extend(self.sync.rules.iter().map(String::as_str));
        args.push("--watch");
        if self.opts.json {
            args.insert(0, "--json");
        }
        let mut cmd = self.child(&args);
        cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
        match cmd.spawn() {
            Ok(child) => {
                self.say(
                    "sync-watch",
                    "project",
                    &format!("watching sync rule(s) {}", self.sync.rules.join(", ")),
                );
                self.sync.child = Some(child);
            }
            Err(e) => {
                self.say(
                    "sync-watch-failed",
                    "project",
                    &format!("cannot start the sync watch: {e}"),
                );
                self.sync.restart_at = Some(Instant::now() + MAX_SYNC_RESTART);
            }
        }
    }

    /// Looks at everything: each service's container, the last apply, each backup's newest
    /// snapshot, each sync rule's last pass; updates the metrics, raises and clears alerts.
    async fn reconcile(&mut self) {
        let now = Instant::now();
        // A sync watch that ended is started again, later each time it ends quickly.
        if let Some(child) = self.sync.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                self.sync.child = None;
                self.sync.restarts += 1;
                let pause = (Duration::from_secs(2) * (1u32 << self.sync.restarts.min(5)))
                    .min(MAX_SYNC_RESTART);
                self.say(
                    "sync-watch-ended",
                    "project",
                    &format!(
                        "the sync watch ended ({status}); starting it again in {}s",
                        pause.as_secs()
                    ),
                );
                self.sync.restart_at = Some(now + pause);
            }
        }
        match crate::observe::services(self.backend.as_ref(), &self.m).await {
            Ok(found) => {
                if self.engine_lost.is_none() {
                    self.metrics.degraded.get_or_create(&vec![]).set(0.0);
                }
                let colours = self.colours().await;
                let on_purpose = stopped_on_purpose(&self.m.project.state_dir);
                for s in found {
                    if !self.services.contains_key(&s.service) {
                        continue;
                    }
                    let l = label("service", &s.service);
                    let (up, health, uptime, id, name) = match &s.container {
                        Some(c) => (
                            c.state == ContainerState::Running,
                            c.health,
                            c.started_at
                                .filter(|_| c.state == ContainerState::Running)
                                .map(|t| (Utc::now() - t).num_milliseconds() as f64 / 1000.0),
                            Some(c.id.clone()),
                            c.name.clone(),
                        ),
                        None => (false, HealthState::None, None, None, String::new()),
                    };
                    let healthy = up && matches!(health, HealthState::Healthy | HealthState::None);
                    self.metrics
                        .service_up
                        .get_or_create(&l)
                        .set(f64::from(u8::from(up)));
                    self.metrics
                        .service_healthy
                        .get_or_create(&l)
                        .set(f64::from(u8::from(healthy)));
                    self.metrics
                        .service_uptime
                        .get_or_create(&l)
                        .set(uptime.unwrap_or(0.0));
                    if let Some(p) = &s.proxy {
                        if let Ok(report) = &p.report {
                            for (cid, open) in &report.open {
                                let colour =
                                    colours.get(cid).cloned().unwrap_or_else(|| "other".into());
                                self.metrics
                                    .proxy_connections
                                    .get_or_create(&vec![
                                        ("service".into(), s.service.clone()),
                                        ("colour".into(), colour),
                                    ])
                                    .set(*open as f64);
                            }
                        }
                    }
                    let Some(w) = self.services.get_mut(&s.service) else {
                        continue;
                    };
                    // A new container (an apply replaced it) starts with a clean slate.
                    if id.is_some() && w.container_id.is_some() && id != w.container_id {
                        w.restarts.reset();
                    }
                    w.container_id = id;
                    if !on_purpose.contains(&s.service) {
                        w.availability.see(now, healthy);
                    }
                    if let Some(r) = w.availability.ratio(now) {
                        self.metrics.service_availability.get_or_create(&l).set(r);
                    }
                    // What an event may have missed (the supervisor started late, the engine
                    // was away).
                    let pending = w.restarting || w.retry_at.is_some();
                    match health {
                        HealthState::Unhealthy if up && !pending => {
                            self.on_health(&s.service, &name, HealthState::Unhealthy)
                                .await
                        }
                        HealthState::Healthy if w.unhealthy || w.restarts.gave_up() => {
                            self.on_health(&s.service, &name, HealthState::Healthy)
                                .await
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => {
                tracing::info!("reconcile: {}", crate::exec::chain(&e));
                self.metrics.degraded.get_or_create(&vec![]).set(1.0);
            }
        }
        self.reconcile_apply();
        self.reconcile_backups();
        self.reconcile_syncs();
        for (alert, n) in self.alerter.failures() {
            self.metrics
                .alert_failures
                .get_or_create(&label("alert", &alert))
                .set(n as f64);
        }
        self.write_status();
    }

    /// Container id → colour, for the project's blue-green containers.
    async fn colours(&self) -> BTreeMap<String, String> {
        let filter = LabelFilter::new().with(names::LABEL_PROJECT, self.m.project.name.clone());
        self.backend
            .list_containers(&filter, true)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| {
                let colour = c
                    .labels
                    .get(crate::executors::blue_green::LABEL_COLOUR)?
                    .clone();
                Some((c.id, colour))
            })
            .collect()
    }

    fn reconcile_apply(&self) {
        let history = crate::history::History::in_state_dir(&self.m.project.state_dir);
        let Some(last) = history
            .last()
            .ok()
            .flatten()
            .and_then(|n| history.get(n).ok())
        else {
            return;
        };
        let none = vec![];
        self.metrics
            .apply_duration
            .get_or_create(&none)
            .set(last.duration_ms as f64 / 1000.0);
        self.metrics
            .apply_success
            .get_or_create(&none)
            .set(f64::from(u8::from(
                last.outcome == crate::history::Outcome::Applied,
            )));
        self.metrics
            .apply_time
            .get_or_create(&none)
            .set(last.time.timestamp_millis() as f64 / 1000.0);
    }

    fn reconcile_backups(&mut self) {
        let now = Utc::now();
        for (name, backup) in &self.m.backups {
            let node = format!("backup.{name}");
            let l = label("backup", name);
            let newest = crate::backup::targets::primary_dir(backup).and_then(|store| {
                crate::backup::catalog::list_snapshots(&store, now)
                    .ok()?
                    .of_backup(name)
                    .max_by_key(|s| s.created)
                    .cloned()
            });
            if let Some(s) = &newest {
                self.metrics
                    .backup_last_success
                    .get_or_create(&l)
                    .set(s.created.timestamp_millis() as f64 / 1000.0);
                self.metrics
                    .backup_size
                    .get_or_create(&l)
                    .set(s.size as f64);
                self.metrics
                    .backup_age
                    .get_or_create(&l)
                    .set((now - s.created).num_milliseconds() as f64 / 1000.0);
            }
            if let Some(max_age) = backup.max_age {
                let stale = match &newest {
                    None => true,
                    Some(s) => (now - s.created).to_std().unwrap_or_default() > max_age.0,
                };
                if stale {
                    let reason = match &newest {
                        None => "no snapshot yet".to_string(),
                        Some(s) => format!(
                            "the newest snapshot is {} old (max-age {max_age})",
                            humantime::format_duration(Duration::from_secs(
                                (now - s.created).num_seconds().max(0) as u64
                            ))
                        ),
                    };
                    if self.alerter.raise(AlertEvent::BackupStale, &node, &reason) {
                        self.say(
                            "backup-stale",
                            &node,
                            &format!("backup {name}: stale, {reason}"),
                        );
                    }
                } else {
                    self.alerter
                        .clear(AlertEvent::BackupStale, &node, "a fresh snapshot");
                }
            }
            if let (Some(schedule), Some(w)) = (&backup.schedule, self.backups.get_mut(name)) {
                if w.next_due.is_none() && !w.running {
                    let last = newest.as_ref().map(|s| s.created).max(w.last_success);
                    w.next_due = Some(schedule.next_due(last, self.started));
                }
            }
        }
    }

    fn reconcile_syncs(&mut self) {
        for name in self.m.syncs.keys() {
            let node = format!("sync.{name}");
            let dir = crate::sync::target::rule_dir(&self.m.project.state_dir, name);
            let Ok(Some(pass)) = crate::sync::last_pass::load(&dir) else {
                continue;
            };
            let l = label("sync", name);
            if let Ok(t) = DateTime::parse_from_rfc3339(&pass.finished_at) {
                self.metrics
                    .sync_last_pass
                    .get_or_create(&l)
                    .set(t.timestamp_millis() as f64 / 1000.0);
            }
            self.metrics
                .sync_conflicts
                .get_or_create(&l)
                .set(pass.conflicts as f64);
            if self.sync.seen.get(name) == Some(&pass.finished_at) {
                continue;
            }
            self.sync
                .seen
                .insert(name.clone(), pass.finished_at.clone());
            if pass.conflicts > 0 {
                let reason = format!(
                    "{} conflict(s) in the pass of {}",
                    pass.conflicts, pass.finished_at
                );
                if self.alerter.raise(AlertEvent::SyncConflict, &node, &reason) {
                    self.say("sync-conflict", &node, &format!("sync {name}: {reason}"));
                }
            } else if pass.halted.is_none() {
                // A clean pass; one that halted for another reason says nothing of conflicts.
                self.alerter
                    .clear(AlertEvent::SyncConflict, &node, "a clean pass");
            }
        }
    }

    fn write_status(&self) {
        let status = status_file::SupervisorStatus {
            pid: std::process::id(),
            host: crate::debris::host().to_string(),
            started: self.started,
            heartbeat: Utc::now(),
            interval_ms: self.opts.interval.as_millis() as u64,
            degraded: self
                .engine_lost
                .clone()
                .map(|w| format!("the engine does not answer: {w}")),
            metrics: self.opts.metrics.map(|a| a.to_string()),
        };
        if let Err(e) = status_file::write(&self.m.project.state_dir, &status) {
            tracing::warn!("cannot record the supervisor's status: {e}");
        }
    }

    async fn shut_down(&mut self) {
        if let Some(mut child) = self.sync.child.take() {
            // SIGTERM lets the watch finish its pass; it is killed if it takes too long.
            if let Some(pid) = child.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        self.alerter.flush(Duration::from_secs(5)).await;
        status_file::remove(&self.m.project.state_dir);
        self.say("stopped", "project", "supervisor stopped");
    }
}

/// The channel the supervisor's own tasks report on.
pub struct Receiver(mpsc::UnboundedReceiver<Done>);

/// The last non-empty line of a command's output, for an alert's reason.
fn last_line(output: &str) -> Option<String> {
    output
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_is_the_healthy_share_of_the_watched_window() {
        let mut a = Availability::new(Duration::from_secs(100));
        let t0 = Instant::now();
        a.see(t0, true);
        a.see(t0 + Duration::from_secs(90), false);
        a.see(t0 + Duration::from_secs(99), true);
        let r = a.ratio(t0 + Duration::from_secs(100)).unwrap();
        assert!((r - 0.91).abs() < 1e-9, "{r}");
        // Later, the window slides: 50 s back, 9 s of it unhealthy.
        let mut b = Availability::new(Duration::from_secs(50));
        b.see(t0, true);
        b.see(t0 + Duration::from_secs(90), false);
        b.see(t0 + Duration::from_secs(99), true);
        let r = b.ratio(t0 + Duration::from_secs(100)).unwrap();
        assert!((r - 41.0 / 50.0).abs() < 1e-9, "{r}");
        assert!(Availability::new(Duration::from_secs(1))
            .ratio(t0)
            .is_none());
    }

    #[test]
    fn the_reason_is_the_last_line_said() {
        assert_eq!(
            last_line("a\nerror: disk full\n\n").as_deref(),
            Some("error: disk full")
        );
        assert_eq!(last_line("  \n"), None);
    }
}
