//! Readiness: a service is ready when its own health command succeeds. Waiting out Docker's
//! health interval would make every apply as slow as the slowest interval, so apply also
//! runs the command itself through `exec` — but an exec costs the engine several requests and
//! a process, and fifty services probing every 100 ms flood it. So each wait polls the cheap
//! inspect first (Docker's own health status counts as soon as it says healthy), probes
//! with `exec` only when one of the session's few probe slots is free, and backs off from
//! [`FIRST_DELAY`] to [`MAX_DELAY`]. One deadline, set by the caller, bounds it all.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::backend::{Backend, ContainerState, HealthState};

/// The first pause between looks at a starting service.
pub const FIRST_DELAY: Duration = Duration::from_millis(50);
/// The longest pause between looks.
pub const MAX_DELAY: Duration = Duration::from_millis(1000);
const LOG_LINES: usize = 20;

/// Why a service did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("service `{service}` did not become healthy within {}{}", humantime::format_duration(*waited), details(last_output, logs))]
    Timeout {
        service: String,
        waited: Duration,
        last_output: String,
        logs: Vec<String>,
    },
    #[error(
        "service `{service}` exited with code {code} before it became healthy{}",
        details("", logs)
    )]
    Exited {
        service: String,
        code: i64,
        logs: Vec<String>,
    },
    #[error("service `{service}`: {source}")]
    Backend {
        service: String,
        #[source]
        source: crate::backend::BackendError,
    },
}

fn details(last_output: &str, logs: &[String]) -> String {
    let mut s = String::new();
    if !last_output.trim().is_empty() {
        s.push_str("\n  last health-check output:\n");
        for l in last_output.trim_end().lines().take(10) {
            s.push_str(&format!("    {l}\n"));
        }
    }
    if !logs.is_empty() {
        s.push_str(&format!("\n  last {} log lines:\n", logs.len()));
        for l in logs {
            s.push_str(&format!("    {l}\n"));
        }
    }
    s
}

/// The health command as an exec argv: `CMD` runs as is, `CMD-SHELL` through `/bin/sh -c`.
pub fn probe_argv(test: &[String]) -> Option<Vec<String>> {
    match test.split_first()? {
        (kind, rest) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        (kind, [script]) if kind == "CMD-SHELL" => {
            Some(vec!["/bin/sh".into(), "-c".into(), script.clone()])
        }
        _ => None,
    }
}

async fn last_logs(backend: &dyn Backend, container: &str) -> Vec<String> {
    let mut stream = backend.logs(container, false, Some(LOG_LINES));
    let mut out = Vec::new();
    while let Some(Ok(line)) = stream.next().await {
        out.push(line.line);
    }
    out
}

/// Waits until `container` is healthy — Docker says so, or `test` run through `exec`
/// passes — or `timeout` runs out. At most `probes.available_permits()` execs run at once
/// across every caller sharing `probes`.
pub async fn wait_ready(
    backend: &dyn Backend,
    service: &str,
    container: &str,
    test: &[String],
    timeout: Duration,
    probes: &Semaphore,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<(), NotReady> {
    let Some(argv) = probe_argv(test) else {
        return Ok(());
    };
    let deadline = Instant::now() + timeout;
    let env = Default::default();
    let mut last_output = String::new();
    let mut delay = FIRST_DELAY;
    loop {
        let info = backend
            .inspect_container(container)
            .await
            .map_err(|source| NotReady::Backend {
                service: service.to_string(),
                source,
            })?;
        if let Some(info) = &info {
            match info.state {
                ContainerState::Running if info.health == HealthState::Healthy => return Ok(()),
                ContainerState::Running => {
                    // Busy probe slots mean others are probing: Docker's status will do.
                    if let Ok(_slot) = probes.try_acquire() {
                        if let Ok(r) = backend.exec(container, &argv, &env).await {
                            if r.exit_code == 0 {
                                return Ok(());
                            }
                            last_output = r.output;
                        }
                    }
                }
                ContainerState::Exited | ContainerState::Dead => {
                    return Err(NotReady::Exited {
                        service: service.to_string(),
                        code: info.exit_code.unwrap_or(-1),
                        logs: last_logs(backend, container).await,
                    });
                }
                _ => {}
            }
            if last_output.is_empty() {
                if let Some(out) = info.health_output.last() {
                    last_output = out.clone();
                }
            }
        }
        if Instant::now() >= deadline || cancel.is_cancelled() {
            return Err(NotReady::Timeout {
                service: service.to_string(),
                waited: timeout,
                last_output,
                logs: last_logs(backend, container).await,
            });
        }
        let pause = delay.min(crate::backend::remaining(deadline));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = cancel.cancelled() => {}
        }
        delay = (delay * 2).min(MAX_DELAY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_argv_follows_docker_forms() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            probe_argv(&s(&["CMD", "wget", "-q"])),
            Some(s(&["wget", "-q"]))
        );
        assert_eq!(
            probe_argv(&s(&["CMD-SHELL", "test -f x"])),
            Some(s(&["/bin/sh", "-c", "test -f x"]))
        );
        assert_eq!(probe_argv(&s(&["NONE"])), None);
    }
}
