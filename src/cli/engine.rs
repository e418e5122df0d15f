//! What the commands that walk the graph share: a tokio runtime, the session, the reporter,
//! the Ctrl-C token, and asking before changing anything on a terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::engine::{Options, Session};
use crate::error::{Error, Result};
use crate::exec::{report, Reporter};
use crate::manifest::Manifest;

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            message: "cannot start the async runtime".into(),
            source,
        })
}

/// A session for `m` with `options`, `--json` taken from the context.
pub fn session(m: Arc<Manifest>, json: bool, mut options: Options) -> Result<Session> {
    options.json = json;
    if options.jobs == 0 {
        options.jobs = jobs(None);
    }
    Session::new(m, options)
}

pub fn reporter(json: bool) -> Arc<dyn Reporter> {
    report::make(report::choose_from_env(json))
}

/// A token cancelled by Ctrl-C (SIGINT) or SIGTERM. Call inside the runtime.
pub fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    let _ = crate::exec::signals::install(token.clone());
    token
}

pub fn jobs(j: Option<usize>) -> usize {
    j.unwrap_or_else(num_cpus::get).max(1)
}

/// On a terminal (and without `--yes` or `--json`), asks `question`; elsewhere (CI, scripts,
/// pipes) the answer is yes, as documented.
pub fn confirmed(question: &str, yes: bool, json: bool) -> Result<bool> {
    if yes || json || !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|source| Error::Io {
            message: "cannot read the answer".into(),
            source,
        })?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES"))
}
