//! `sanctuary validate`: load the manifest, report every problem, summarise what it declares.

use super::Context;
use crate::error::{ExitCode, Result};
use crate::graph::Graph;
use crate::manifest::Kind;

pub fn run(ctx: &Context) -> Result<ExitCode> {
    let loaded = ctx.load()?;
    let m = &loaded.manifest;
    let graph = Graph::from_manifest(m);
    let counts: Vec<(Kind, usize)> = Kind::ALL
        .into_iter()
        .map(|k| (k, graph.nodes().iter().filter(|n| n.kind == k).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    let warnings = loaded
        .warnings
        .as_ref()
        .map(|w| w.0.diags.len())
        .unwrap_or(0);
    if ctx.json {
        let obj = serde_json::json!({
            "valid": true,
            "manifest": m.path,
            "project": m.project.name,
            "nodes": counts.iter().map(|(k, n)| (k.to_string(), serde_json::Value::from(*n))).collect::<serde_json::Map<_, _>>(),
            "warnings": loaded.warnings.as_ref().map(|w| w.0.diags.iter().map(|d| d.message.clone()).collect::<Vec<_>>()).unwrap_or_default(),
        });
        println!("{obj}");
    } else {
        let parts: Vec<String> = counts
            .iter()
            .map(|(k, n)| format!("{n} {k}{}", if *n == 1 { "" } else { "s" }))
            .collect();
        let what = if parts.is_empty() {
            "nothing declared".to_string()
        } else {
            parts.join(", ")
        };
        let suffix = match warnings {
            0 => String::new(),
            1 => " (1 warning)".to_string(),
            n => format!(" ({n} warnings)"),
        };
        println!(
            "{}: valid — project {}: {what}{suffix}",
            m.path.display(),
            m.project.name
        );
    }
    Ok(ExitCode::Ok)
}
