//! Apply's side of the control channel: a request to the proxy of a blue-green service,
//! carried by `docker exec <proxy> /sanctuary proxy ctl REQUEST`, so it goes wherever the
//! engine is and nowhere else.

use std::collections::BTreeMap;

use super::{Request, Status, Upstream};
use crate::backend::Backend;

/// Where the binary is inside the proxy image.
pub const BINARY: &str = "/sanctuary";

/// Sends `req` to the proxy in container `proxy` and returns its status after it.
pub async fn send(backend: &dyn Backend, proxy: &str, req: &Request) -> Result<Status, String> {
    let json = serde_json::to_string(req).map_err(|e| e.to_string())?;
    let cmd = [BINARY, "proxy", "ctl", &json].map(String::from);
    let out = backend
        .exec(proxy, &cmd, &BTreeMap::new())
        .await
        .map_err(|e| format!("cannot reach proxy {proxy}: {e}"))?;
    // The answer is the last line; anything before it is the client's own complaint.
    let line = out.output.lines().rev().find(|l| l.starts_with('{'));
    let response: super::Response = match line.map(serde_json::from_str) {
        Some(Ok(r)) => r,
        _ => {
            return Err(format!(
                "proxy {proxy} did not answer (exit {}): {}",
                out.exit_code,
                out.output.trim()
            ))
        }
    };
    match response.error {
        Some(e) if !response.ok => Err(format!("proxy {proxy}: {e}")),
        _ => Ok(response.status),
    }
}

pub async fn status(backend: &dyn Backend, proxy: &str) -> Result<Status, String> {
    send(backend, proxy, &Request::Status).await
}

/// Makes `upstream` live; connections already open stay where they are.
pub async fn switch(
    backend: &dyn Backend,
    proxy: &str,
    upstream: Upstream,
) -> Result<Status, String> {
    send(backend, proxy, &Request::Switch { upstream }).await
}
