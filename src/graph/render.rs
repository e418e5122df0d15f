//! Text, Graphviz DOT and Mermaid renderings of a graph, for `sanctuary graph`.

use std::fmt::Write;

use super::{EdgeKind, Graph};
use crate::manifest::Kind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Dot,
    Mermaid,
}

fn edge_label(kind: EdgeKind) -> Option<String> {
    match kind {
        EdgeKind::DependsOn(c) => Some(c.to_string()),
        EdgeKind::Uses => None,
    }
}

fn shape(kind: Kind) -> &'static str {
    match kind {
        Kind::Image => "box3d",
        Kind::Volume => "cylinder",
        Kind::Network => "hexagon",
        Kind::Service => "box",
        Kind::Task => "component",
        Kind::Test => "diamond",
        Kind::Backup => "folder",
        Kind::Sync => "parallelogram",
        Kind::Secret => "note",
    }
}

/// DOT strings need `"` and `\` escaped.
fn dot_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Graph {
    /// Renders the graph; nodes appear in dependency order.
    pub fn render(&self, format: Format, project: &str) -> String {
        let order = self
            .topo_order()
            .unwrap_or_else(|| (0..self.len()).collect());
        let mut out = String::new();
        match format {
            Format::Text => {
                for &i in &order {
                    let _ = writeln!(out, "{}", self.node(i));
                    for e in self.dependencies(i) {
                        match edge_label(e.kind) {
                            Some(c) => {
                                let _ = writeln!(out, "  ← {} ({c})", self.node(e.to));
                            }
                            None => {
                                let _ = writeln!(out, "  ← {}", self.node(e.to));
                            }
                        }
                    }
                }
            }
            Format::Dot => {
                let _ = writeln!(out, "digraph {} {{", dot_quote(project));
                let _ = writeln!(out, "  rankdir=LR;");
                let _ = writeln!(out, "  node [fontname=\"Helvetica\"];");
                for &i in &order {
                    let n = self.node(i);
                    let _ = writeln!(
                        out,
                        "  {} [label={}, shape={}];",
                        dot_quote(&n.to_string()),
                        dot_quote(&format!("{}\n{}", n.kind, n.name)),
                        shape(n.kind)
                    );
                }
                for &i in &order {
                    for e in self.dependencies(i) {
                        let from = dot_quote(&self.node(e.to).to_string());
                        let to = dot_quote(&self.node(i).to_string());
                        match edge_label(e.kind) {
                            Some(c) => {
                                let _ =
                                    writeln!(out, "  {from} -> {to} [label={}];", dot_quote(&c));
                            }
                            None => {
                                let _ = writeln!(out, "  {from} -> {to} [style=dashed];");
                            }
                        }
                    }
                }
                out.push_str("}\n");
            }
            Format::Mermaid => {
                out.push_str("flowchart LR\n");
                // Mermaid ids must be plain words; labels carry the real names.
                let id = |i: usize| format!("n{i}");
                for &i in &order {
                    let n = self.node(i);
                    let label = format!("{} {}", n.kind, n.name).replace('"', "#quot;");
                    let _ = writeln!(out, "  {}[\"{}\"]", id(i), label);
                }
                for &i in &order {
                    for e in self.dependencies(i) {
                        match edge_label(e.kind) {
                            Some(c) => {
                                let _ = writeln!(out, "  {} -->|{c}| {}", id(e.to), id(i));
                            }
                            None => {
                                let _ = writeln!(out, "  {} -.-> {}", id(e.to), id(i));
                            }
                        }
                    }
                }
            }
        }
        out
    }
}
