//! Telling people: the manifest's `alert` nodes take events (a service unhealthy, a restart
//! limit reached, a backup failed or stale, an apply failed…) and deliver them to a webhook
//! (a JSON POST) or a command (the same JSON on stdin).
//!
//! A condition that holds (a service stays unhealthy) is sent once when it starts and once,
//! as `resolved`, when it clears; events that do not last (an apply failed) are sent each
//! time. Deliveries run on tasks of their own, each bounded by the alert's timeout and
//! retried a few times, so a slow or dead endpoint delays nothing but its own message; a
//! delivery that still fails is logged and counted, never fatal.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::manifest::{Alert, AlertEvent, AlertSink, HeaderSource, Manifest};

/// Attempts per delivery, and the pause after the first failed one (doubled after each).
const ATTEMPTS: u32 = 3;
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// Whether a message opens a condition, closes it, or is an event of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Firing,
    Resolved,
}

/// What an alert says: the JSON body of a webhook, the stdin of a command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub project: String,
    /// The node it is about (`service.web`, `backup.nightly`), or `project`.
    pub node: String,
    pub event: AlertEvent,
    pub status: Status,
    /// A line for people: what happened, from what was seen.
    pub summary: String,
    pub reason: String,
    pub time: chrono::DateTime<chrono::Utc>,
}

fn summary(event: AlertEvent, status: Status, node: &str) -> String {
    use AlertEvent::*;
    match (event, status) {
        (Unhealthy, Status::Firing) => format!("{node} is unhealthy"),
        (Unhealthy, Status::Resolved) => format!("{node} recovered"),
        (RestartLimit, Status::Firing) => {
            format!("{node} reached its restart limit; no more restarts")
        }
        (RestartLimit, Status::Resolved) => {
            format!("{node} is healthy again after its restart limit")
        }
        (ApplyFailed, _) => format!("apply of {node} failed"),
        (RolledBack, _) => format!("apply of {node} failed and was rolled back"),
        (BackupFailed, Status::Firing) => format!("{node} failed"),
        (BackupFailed, Status::Resolved) => format!("{node} succeeded again"),
        (BackupStale, Status::Firing) => {
            format!("the newest snapshot of {node} is older than its max-age")
        }
        (BackupStale, Status::Resolved) => format!("{node} has a fresh snapshot again"),
        (SyncConflict, Status::Firing) => format!("{node} has conflicts to settle"),
        (SyncConflict, Status::Resolved) => format!("{node} passes clean again"),
        (EngineLost, Status::Firing) => "the Docker engine does not answer".to_string(),
        (EngineLost, Status::Resolved) => "the Docker engine answers again".to_string(),
    }
}

/// One delivery that did not get through, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub alert: String,
    pub why: String,
}

/// Sends the project's alerts and remembers which conditions are open.
pub struct Alerter {
    manifest: Arc<Manifest>,
    client: reqwest::Client,
    /// (event, node) → when the open condition was first sent.
    open: Mutex<BTreeMap<(AlertEvent, String), chrono::DateTime<chrono::Utc>>>,
    deliveries: Mutex<tokio::task::JoinSet<Option<Failure>>>,
    failed: Mutex<BTreeMap<String, u64>>,
}

impl Alerter {
    pub fn new(manifest: Arc<Manifest>) -> Self {
        Alerter {
            manifest,
            client: reqwest::Client::builder()
                .user_agent(concat!("sanctuary/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            open: Mutex::new(BTreeMap::new()),
            deliveries: Mutex::new(tokio::task::JoinSet::new()),
            failed: Mutex::new(BTreeMap::new()),
        }
    }

    /// A condition holds: sent when it was not already open. Returns whether it was sent.
    pub fn raise(&self, event: AlertEvent, node: &str, reason: &str) -> bool {
        let key = (event, node.to_string());
        {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            if open.contains_key(&key) {
                return false;
            }
            open.insert(key, chrono::Utc::now());
        }
        self.send(event, Status::Firing, node, reason);
        true
    }

    /// A condition cleared: `resolved` is sent when it was open. Returns whether it was.
    pub fn clear(&self, event: AlertEvent, node: &str, reason: &str) -> bool {
        let was = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(event, node.to_string()))
            .is_some();
        if was {
            self.send(event, Status::Resolved, node, reason);
        }
        was
    }

    /// Whether a condition is open.
    pub fn is_open(&self, event: AlertEvent, node: &str) -> bool {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&(event, node.to_string()))
    }

    /// An event that does not last (an apply failed): sent every time.
    pub fn once(&self, event: AlertEvent, node: &str, reason: &str) {
        self.send(event, Status::Firing, node, reason);
    }

    fn send(&self, event: AlertEvent, status: Status, node: &str, reason: &str) {
        let message = Message {
            project: self.manifest.project.name.clone(),
            node: node.to_string(),
            event,
            status,
            summary: summary(event, status, node),
            reason: reason.to_string(),
            time: chrono::Utc::now(),
        };
        let mut deliveries = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        // Finished deliveries are collected here, so the set stays small.
        while let Some(done) = deliveries.try_join_next() {
            self.count(done);
        }
        for alert in self.manifest.alerts.values() {
            if !alert.events.contains(&event) {
                continue;
            }
            let alert = alert.clone();
            let message = message.clone();
            let client = self.client.clone();
            let manifest = Arc::clone(&self.manifest);
            deliveries.spawn(async move {
                let outcome = deliver(&client, &manifest, &alert, &message).await;
                match outcome {
                    Ok(()) => None,
                    Err(why) => {
                        tracing::warn!(alert = %alert.name, event = %message.event, "alert not delivered: {why}");
                        eprintln!(
                            "warning: alert `{}` could not deliver {} {} ({why})",
                            alert.name, message.event, message.node
                        );
                        Some(Failure {
                            alert: alert.name.clone(),
                            why,
                        })
                    }
                }
            });
        }
    }

    fn count(&self, done: Result<Option<Failure>, tokio::task::JoinError>) {
        if let Ok(Some(f)) = done {
            *self
                .failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(f.alert)
                .or_default() += 1;
        }
    }

    /// Deliveries that failed so far, per alert.
    pub fn failures(&self) -> BTreeMap<String, u64> {
        {
            let mut deliveries = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
            while let Some(done) = deliveries.try_join_next() {
                self.count(done);
            }
        }
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits for the deliveries under way, up to `within` (a command about to exit gives its
    /// alerts that long); what is still running then is abandoned.
    pub async fn flush(&self, within: Duration) {
        let mut set =
            std::mem::take(&mut *self.deliveries.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = tokio::time::timeout(within, async {
            while let Some(done) = set.join_next().await {
                self.count(done);
            }
        })
        .await;
    }
}

/// One message to one alert, retried while the endpoint fails in a way that may pass.
async fn deliver(
    client: &reqwest::Client,
    m: &Manifest,
    alert: &Alert,
    message: &Message,
) -> Result<(), String> {
    let body = serde_json::to_vec(message).map_err(|e| e.to_string())?;
    let mut pause = FIRST_RETRY;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let result = match &alert.sink {
            AlertSink::Webhook { url, headers } => {
                let mut req = client
                    .post(url)
                    .timeout(alert.timeout.0)
                    .header("content-type", "application/json")
                    .body(body.clone());
                for h in headers {
                    let value = match &h.value {
                        HeaderSource::Literal(v) => v.clone(),
                        HeaderSource::Secret { secret, prefix } => {
                            let v = crate::secrets::resolve(m, secret).map_err(|e| {
                                format!("header `{}` needs secret `{secret}`: {e}", h.name)
                            })?;
                            format!("{prefix}{v}")
                        }
                    };
                    req = req.header(h.name.as_str(), value);
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    // The endpoint refused the message itself: sending it again will not help.
                    Ok(r) if r.status().is_client_error() => {
                        return Err(format!("{url} answered {}", r.status()))
                    }
                    Ok(r) => Err(format!("{url} answered {}", r.status())),
                    Err(e) => Err(format!("POST {url}: {}", crate::exec::chain(&e))),
                }
            }
            AlertSink::Command(argv) => run_command(argv, message, &body, alert.timeout.0).await,
        };
        match result {
            Ok(()) => return Ok(()),
            Err(why) => last = why,
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    Err(format!("{last} (after {ATTEMPTS} attempts)"))
}

async fn run_command(
    argv: &[String],
    message: &Message,
    body: &[u8],
    timeout: Duration,
) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("SANCTUARY_ALERT_EVENT", message.event.to_string())
        .env(
            "SANCTUARY_ALERT_STATUS",
            match message.status {
                Status::Firing => "firing",
                Status::Resolved => "resolved",
            },
        )
        .env("SANCTUARY_ALERT_NODE", &message.node)
        .env("SANCTUARY_ALERT_SUMMARY", &message.summary)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    let mut stdin = child.stdin.take();
    let run = async {
        if let Some(s) = stdin.as_mut() {
            // A command that does not read its stdin is its own business.
            let _ = s.write_all(body).await;
        }
        drop(stdin);
        child.wait().await
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("`{program}` exited with {status}")),
        Ok(Err(e)) => Err(format!("waiting for `{program}`: {e}")),
        Err(_) => Err(format!(
            "`{program}` did not finish within {}",
            humantime::format_duration(timeout)
        )),
    }
}

/// From a command that is about to exit (apply): one event, delivered before the return or
/// abandoned after the alerts' longest timeout (with its retries).
pub async fn notify(m: &Arc<Manifest>, event: AlertEvent, node: &str, reason: &str) {
    let within = m
        .alerts
        .values()
        .filter(|a| a.events.contains(&event))
        .map(|a| a.timeout.0 * ATTEMPTS + FIRST_RETRY * 4)
        .max();
    let Some(within) = within else {
        return;
    };
    let alerter = Alerter::new(Arc::clone(m));
    alerter.once(event, node, reason);
    alerter.flush(within).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(url: &str) -> Arc<Manifest> {
        let vars = crate::manifest::interpolate::Vars::new(Default::default(), Default::default());
        let text = format!(
            "project \"p\"\nalert \"ops\" {{\n  webhook url=\"{url}\"\n  on \"unhealthy\" \"backup-failed\"\n  timeout \"300ms\"\n}}\n"
        );
        Arc::new(
            crate::manifest::load_str(
                "Sanctuary.kdl",
                &text,
                std::path::Path::new("/p/Sanctuary.kdl"),
                std::path::Path::new("/p"),
                &vars,
            )
            .expect("valid manifest")
            .manifest,
        )
    }

    #[tokio::test]
    async fn a_condition_is_sent_once_while_it_holds_and_resolved_once() {
        // Nothing listens there: deliveries fail, which is counted, and nothing waits on it.
        let alerter = Alerter::new(manifest("http://127.0.0.1:9/hook"));
        assert!(alerter.raise(AlertEvent::Unhealthy, "service.web", "probe failed"));
        assert!(!alerter.raise(AlertEvent::Unhealthy, "service.web", "probe failed"));
        assert!(alerter.is_open(AlertEvent::Unhealthy, "service.web"));
        assert!(alerter.clear(AlertEvent::Unhealthy, "service.web", "healthy"));
        assert!(!alerter.clear(AlertEvent::Unhealthy, "service.web", "healthy"));
        // An event the alert does not take is not delivered to it.
        alerter.once(AlertEvent::ApplyFailed, "project", "x");
        alerter.flush(Duration::from_secs(10)).await;
        assert_eq!(alerter.failures().get("ops"), Some(&2), "firing + resolved");
    }

    /// A webhook on loopback answering each request with the next status of `answers`
    /// (the last one for ever); returns its URL and how many requests it got.
    async fn endpoint(answers: &'static [u16]) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let status = answers[n.min(answers.len() - 1)];
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn a_failing_endpoint_is_retried_and_a_refusal_is_not() {
        use std::sync::atomic::Ordering::SeqCst;
        // 500 then 200: delivered on the second attempt.
        let (url, seen) = endpoint(&[500, 200]).await;
        let alerter = Alerter::new(manifest(&url));
        alerter.once(AlertEvent::Unhealthy, "service.web", "x");
        alerter.flush(Duration::from_secs(10)).await;
        assert_eq!(seen.load(SeqCst), 2);
        assert!(alerter.failures().is_empty());
        // 500 for ever: three attempts, then counted as failed.
        let (url, seen) = endpoint(&[500]).await;
        let alerter = Alerter::new(manifest(&url));
        alerter.once(AlertEvent::Unhealthy, "service.web", "x");
        alerter.flush(Duration::from_secs(10)).await;
        assert_eq!(seen.load(SeqCst), ATTEMPTS as usize);
        assert_eq!(alerter.failures().get("ops"), Some(&1));
        // 403: the endpoint refused the message itself; it is not sent again.
        let (url, seen) = endpoint(&[403]).await;
        let alerter = Alerter::new(manifest(&url));
        alerter.once(AlertEvent::Unhealthy, "service.web", "x");
        alerter.flush(Duration::from_secs(10)).await;
        assert_eq!(seen.load(SeqCst), 1);
        assert_eq!(alerter.failures().get("ops"), Some(&1));
    }

    #[test]
    fn summaries_say_what_happened() {
        assert_eq!(
            summary(AlertEvent::Unhealthy, Status::Resolved, "service.web"),
            "service.web recovered"
        );
        let m = Message {
            project: "p".into(),
            node: "service.web".into(),
            event: AlertEvent::RestartLimit,
            status: Status::Firing,
            summary: "s".into(),
            reason: "r".into(),
            time: chrono::DateTime::from_timestamp(0, 0).unwrap(),
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["event"], "restart-limit");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
    }
}
