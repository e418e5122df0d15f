//! The network probes of tests: an HTTP request checked against expectations, and a TCP
//! connect, each tried `retries + 1` times with `delay` between attempts. A probe that never
//! passes answers with the last attempt's reason and a log of every attempt.

use std::time::Duration;

use tokio::net::TcpStream;

use super::http;
use crate::manifest::HttpProbe;

/// How a probe ended: passed or not, and a line per attempt for the failure report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// `None` when the probe passed; otherwise the last attempt's reason.
    pub failure: Option<String>,
    pub log: String,
}

/// Tries `attempt` up to `retries + 1` times, sleeping `delay` between failures.
async fn with_retries<F, Fut>(retries: u32, delay: Duration, mut attempt: F) -> ProbeResult
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    let mut log = String::new();
    let mut last = String::new();
    for i in 0..=retries {
        match attempt().await {
            Ok(note) => {
                log.push_str(&format!("attempt {}: {note}\n", i + 1));
                return ProbeResult { failure: None, log };
            }
            Err(reason) => {
                log.push_str(&format!("attempt {}: {reason}\n", i + 1));
                last = reason;
            }
        }
        if i < retries {
            tokio::time::sleep(delay).await;
        }
    }
    ProbeResult {
        failure: Some(last),
        log,
    }
}

/// Requests the probe's URL until the answer matches its expectations.
pub async fn http_probe(probe: &HttpProbe) -> ProbeResult {
    let method = probe.method.to_string();
    with_retries(probe.retries, probe.delay.0, || async {
        let trust = http::Trust {
            ca_file: probe.ca_file.as_deref(),
            insecure: probe.insecure,
        };
        let r = http::request(&method, &probe.url, probe.body.as_deref(), trust)
            .await
            .map_err(|e| e.to_string())?;
        http::check(probe, &r)
            .map(|()| format!("{} {} → {}", method, probe.url, r.status))
            .map_err(|why| {
                let body: String = r.body.chars().take(2000).collect();
                format!("{method} {} → {}: {why}\n{body}", probe.url, r.status)
            })
    })
    .await
}

/// Connects to `address` (`host:port`) until a connection is accepted.
pub async fn tcp_probe(address: &str, retries: u32, delay: Duration) -> ProbeResult {
    with_retries(retries, delay, || async {
        TcpStream::connect(address)
            .await
            .map(|_| format!("connected to {address}"))
            .map_err(|e| format!("cannot connect to {address}: {e}"))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_probes_pass_on_an_open_port_and_fail_after_retries_on_a_closed_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().to_string();
        let ok = tcp_probe(&open, 0, Duration::ZERO).await;
        assert_eq!(ok.failure, None);
        drop(listener);
        let bad = tcp_probe(&open, 2, Duration::from_millis(1)).await;
        assert!(bad.failure.unwrap().contains("cannot connect"));
        assert_eq!(bad.log.lines().count(), 3, "{}", bad.log);
    }

    #[tokio::test]
    async fn retries_stop_at_the_first_success() {
        let mut calls = 0;
        let r = with_retries(5, Duration::ZERO, || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(format!("no {n}"))
                } else {
                    Ok("yes".to_string())
                }
            }
        })
        .await;
        assert_eq!(r.failure, None);
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn an_https_probe_that_cannot_connect_says_so() {
        let probe = HttpProbe {
            url: "https://127.0.0.1:1/".into(),
            method: crate::manifest::HttpMethod::Get,
            status: 200,
            contains: None,
            json_path: None,
            equals: None,
            body: None,
            retries: 0,
            delay: crate::manifest::Duration(Duration::ZERO),
            ca_file: None,
            insecure: false,
        };
        let r = http_probe(&probe).await;
        let why = r.failure.unwrap();
        assert!(why.contains("https://127.0.0.1:1/"), "{why}");
        assert!(why.to_lowercase().contains("connect"), "{why}");
    }
}
