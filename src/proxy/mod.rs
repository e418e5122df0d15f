//! `sanctuary proxy`: the TCP proxy in front of a blue-green service. It runs inside a
//! container of the project (see [`image`]), holds the service's published ports and its name
//! on the project's networks, and forwards every connection to the container that is live.
//!
//! The live upstream is swapped atomically: a connection reads it once, when it is accepted,
//! so connections already open finish on the container they started on (draining) while new
//! ones go to the new container. Each upstream's open connections are counted, so apply knows
//! when the old container has drained.
//!
//! The control channel is a Unix socket inside the container; apply reaches it through
//! `docker exec sanctuary proxy ctl …`, so only who can reach the engine can switch traffic.
//! The upstream is written to a file in the container before a switch is answered, so a proxy
//! Docker restarts comes back pointing where it pointed.

pub mod control;
pub mod image;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixListener};

/// Where the proxy keeps its control socket and its upstream, inside its container.
pub const CONTROL_SOCKET: &str = "/run/sanctuary-proxy/control.sock";
pub const STATE_FILE: &str = "/var/lib/sanctuary-proxy/upstream.json";

/// How long connecting to the upstream may take before the client's connection is closed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The container traffic goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// The container's id: connection counts are kept per id.
    pub id: String,
    /// Its address on the network the proxy shares with it.
    pub host: String,
}

/// What `status` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub upstream: Option<Upstream>,
    /// Container id → connections open through the proxy to it now.
    pub open: BTreeMap<String, u64>,
    /// Connections accepted since the proxy started.
    pub accepted: u64,
    pub ports: Vec<u16>,
}

/// One request on the control socket, one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Status,
    Switch { upstream: Upstream },
}

/// The answer to a request, one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub status: Status,
}

struct Shared {
    /// The live upstream and its connection counter, read once per accepted connection.
    live: RwLock<Option<(Upstream, Arc<AtomicU64>)>>,
    counters: std::sync::Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    accepted: AtomicU64,
    ports: Vec<u16>,
    state_file: PathBuf,
}

impl Shared {
    fn counter(&self, id: &str) -> Arc<AtomicU64> {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        // Counters of upstreams that are neither live nor busy go, so a long-lived proxy
        // does not keep one per container it ever served.
        let live = self.live_id();
        c.retain(|k, v| v.load(Ordering::Relaxed) > 0 || Some(k.as_str()) == live.as_deref());
        Arc::clone(c.entry(id.to_string()).or_default())
    }

    fn live_id(&self) -> Option<String> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.as_ref().map(|(u, _)| u.id.clone())
    }

    fn status(&self) -> Status {
        let upstream = self
            .live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(u, _)| u.clone());
        let open = self
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect();
        Status {
            upstream,
            open,
            accepted: self.accepted.load(Ordering::Relaxed),
            ports: self.ports.clone(),
        }
    }

    /// Writes the new upstream down, then makes it live: a restarted proxy must never point
    /// at an older one than the last switch apply was told succeeded.
    fn switch(&self, upstream: Upstream) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&upstream).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(&self.state_file, &bytes)?;
        let counter = self.counter(&upstream.id);
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Some((upstream, counter));
        Ok(())
    }
}

/// Decrements an upstream's open count when its connection ends, however it ends.
struct Open(Arc<AtomicU64>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `ports` until the process is stopped. Each port is forwarded to the same port of
/// the live upstream.
pub async fn serve(ports: Vec<u16>, state_file: &Path, control: &Path) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        live: RwLock::new(None),
        counters: Default::default(),
        accepted: AtomicU64::new(0),
        ports: ports.clone(),
        state_file: state_file.to_path_buf(),
    });
    if let Ok(bytes) = std::fs::read(state_file) {
        match serde_json::from_slice::<Upstream>(&bytes) {
            Ok(u) => {
                let counter = shared.counter(&u.id);
                *shared.live.write().unwrap_or_else(|e| e.into_inner()) = Some((u, counter));
            }
            Err(e) => eprintln!(
                "sanctuary proxy: ignoring {}: {e}; waiting for a switch",
                state_file.display()
            ),
        }
    }
    for dir in [control.parent(), state_file.parent()]
        .into_iter()
        .flatten()
    {
        std::fs::create_dir_all(dir)?;
    }
    // A socket left by the previous run of this container would refuse the bind.
    let _ = std::fs::remove_file(control);
    let control = UnixListener::bind(control)?;
    let mut listeners = Vec::new();
    for port in &ports {
        let l = TcpListener::bind(("0.0.0.0", *port)).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on port {port}: {e}"))
        })?;
        listeners.push((*port, l));
    }
    eprintln!("sanctuary proxy: listening on {ports:?}");
    for (port, l) in listeners {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                match l.accept().await {
                    Ok((conn, _)) => {
                        shared.accepted.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(forward(Arc::clone(&shared), conn, port));
                    }
                    // Out of file descriptors, usually: pause rather than spin.
                    Err(e) => {
                        eprintln!("sanctuary proxy: accept on {port}: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
    loop {
        let (conn, _) = control.accept().await?;
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _ = answer(&shared, conn).await;
        });
    }
}

async fn forward(shared: Arc<Shared>, mut client: TcpStream, port: u16) {
    let live = shared
        .live
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let Some((upstream, counter)) = live else {
        return;
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let _open = Open(counter);
    let connect = TcpStream::connect((upstream.host.as_str(), port));
    let mut server = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            eprintln!("sanctuary proxy: {}:{port}: {e}", upstream.host);
            return;
        }
        Err(_) => {
            eprintln!(
                "sanctuary proxy: {}:{port}: connect timed out",
                upstream.host
            );
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

async fn answer(shared: &Shared, conn: tokio::net::UnixStream) -> std::io::Result<()> {
    let (read, mut write) = conn.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(Request::Status) => Response {
            ok: true,
            error: None,
            status: shared.status(),
        },
        Ok(Request::Switch { upstream }) => match shared.switch(upstream) {
            Ok(()) => Response {
                ok: true,
                error: None,
                status: shared.status(),
            },
            Err(e) => Response {
                ok: false,
                error: Some(format!("cannot record the upstream: {e}")),
                status: shared.status(),
            },
        },
        Err(e) => Response {
            ok: false,
            error: Some(format!("not a request: {e}")),
            status: shared.status(),
        },
    };
    let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await
}

/// Sends one request to the proxy's control socket (inside its container) and returns the
/// answer: what `sanctuary proxy ctl` and `proxy check` do.
pub async fn request(control: &Path, req: &Request) -> std::io::Result<Response> {
    let conn = tokio::net::UnixStream::connect(control).await?;
    let (read, mut write) = conn.into_split();
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}
