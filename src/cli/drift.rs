//! `sanctuary drift`: what changed outside sanctuary since the last generation, without
//! changing anything. Exit 0 when nothing did, 2 when something did, 1 on any error — as
//! `plan --detailed-exitcode`, so a cron job or CI can alert on it.

use super::engine;
use super::Context;
use crate::error::{Error, ExitCode, Result};
use crate::history::drift::{self, Drifted};
use crate::history::History;
use crate::state::StateFile;

pub fn run(ctx: &Context) -> Result<ExitCode> {
    let current = ctx.load_for_history()?;
    let h = History::in_state_dir(&current.project.state_dir);
    let Some(last) = h.last().map_err(super::history::error)? else {
        return Err(Error::usage(
            "there is nothing to compare with: no generation has been recorded",
            "drift compares the engine with the last generation; every apply that changes something records one",
        ));
    };
    let g = h.get(last).map_err(super::history::error)?;
    // The generation's own manifest says what it made; it is the working tree's when that
    // has not changed since.
    let sha = crate::plan::desired::sha256_hex(current.source.as_bytes());
    let m = if sha == g.manifest_sha256 {
        current
    } else {
        let name = format!("generation {} of {}", g.number, current.path.display());
        crate::manifest::load_text(&current.path, &name, &g.manifest)?.manifest
    };
    let state = StateFile::load(&StateFile::path_in(&m.project.state_dir))?;
    let rt = engine::runtime()?;
    let found: Vec<Drifted> = rt.block_on(async {
        let backend = crate::engine::connect().await?;
        Ok::<_, Error>(drift::find(backend.as_ref(), &m, &g, &state).await?)
    })?;
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({ "project": m.project.name, "generation": g.number, "drift": found })
        );
    } else if found.is_empty() {
        println!(
            "No drift: the engine holds what generation {} left.",
            g.number
        );
    } else {
        let width = found.iter().map(|d| d.node.len()).max().unwrap_or(0);
        let kinds = found
            .iter()
            .map(|d| d.kind.as_str().len())
            .max()
            .unwrap_or(0);
        for d in &found {
            println!(
                "{:<width$}  {:<kinds$}  {}",
                d.node,
                d.kind.as_str(),
                d.detail
            );
        }
        println!(
            "{} change(s) made outside sanctuary since generation {}; `sanctuary plan` shows how apply would put them back.",
            found.len(),
            g.number
        );
    }
    Ok(if found.is_empty() {
        ExitCode::Ok
    } else {
        ExitCode::Usage
    })
}
