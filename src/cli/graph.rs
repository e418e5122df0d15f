//! `sanctuary graph`: the dependency graph as text, Graphviz DOT or Mermaid.

use super::Context;
use crate::error::{Error, ExitCode, Result};
use crate::graph::{Format, Graph};
use crate::manifest::{diagnostic::did_you_mean, Manifest, NodeId};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Show only these nodes and what they need (`omega` or `service.omega`).
    targets: Vec<String>,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let loaded = ctx.load()?;
    let m = &loaded.manifest;
    let targets = resolve_targets(m, &args.targets)?;
    let graph = Graph::from_manifest(m).select(&targets);
    if ctx.json {
        let nodes: Vec<_> = (0..graph.len())
            .map(|i| {
                serde_json::json!({
                    "id": graph.node(i).to_string(),
                    "kind": graph.node(i).kind,
                    "name": graph.node(i).name,
                    "depends_on": graph.dependencies(i).iter().map(|e| serde_json::json!({
                        "node": graph.node(e.to).to_string(),
                        "edge": e.kind,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "nodes": nodes }));
    } else {
        print!("{}", graph.render(args.format, &m.project.name));
    }
    Ok(ExitCode::Ok)
}

/// Turns names typed on the command line into node ids, with suggestions for typos.
pub fn resolve_targets(m: &Manifest, names: &[String]) -> Result<Vec<NodeId>> {
    names
        .iter()
        .map(|name| {
            let found = m.lookup(name);
            match found.len() {
                1 => Ok(found.into_iter().next().expect("one element")),
                0 => {
                    let all: Vec<String> = m.node_ids().iter().map(|n| n.name.clone()).collect();
                    let help = did_you_mean(name, all.iter().map(String::as_str))
                        .unwrap_or_else(|| "`sanctuary graph` lists every node".to_string());
                    Err(Error::UnknownTarget {
                        what: "node",
                        name: name.clone(),
                        help,
                    })
                }
                _ => Err(Error::usage(
                    format!("`{name}` is ambiguous"),
                    format!(
                        "write one of: {}",
                        found
                            .iter()
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            }
        })
        .collect()
}
