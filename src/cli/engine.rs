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

/// A token cancelled by Ctrl-C (SIGINT) or SIGTERM: a child of the process's one listener.
pub fn interrupt_token() -> CancellationToken {
    crate::exec::signals::process_token()
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

/// Walks `plan` with the terminal's reporter and, unless `--json`, repeats each failure on
/// stderr at the end, where scripts and people look for errors. Returns the summary and the
/// exit code it implies. `interruptible`: Ctrl-C stops the walk (a teardown after an
/// interruption is not).
pub async fn walk(
    session: &Session,
    plan: &crate::plan::Plan,
    strict: bool,
    interruptible: bool,
) -> Result<(crate::exec::Summary, crate::error::ExitCode)> {
    let json = session.options.json;
    let cancel = if interruptible {
        interrupt_token()
    } else {
        CancellationToken::new()
    };
    let summary =
        crate::engine::walk(session, plan, strict, reporter(json), cancel.clone()).await?;
    if !json {
        for n in summary.failed() {
            let message = n.status.note().unwrap_or_default();
            eprintln!("error: {}: {message}", n.label);
        }
    }
    let code = crate::engine::exit_code(&summary, &cancel);
    Ok((summary, code))
}
