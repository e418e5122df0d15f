//! `sanctuary list`: tasks and tests with their descriptions, like `just --list`.

use super::Context;
use crate::error::{ExitCode, Result};

pub fn run(ctx: &Context) -> Result<ExitCode> {
    let loaded = ctx.load()?;
    let m = &loaded.manifest;
    if ctx.json {
        let tasks: Vec<_> = m
            .tasks
            .values()
            .map(|t| serde_json::json!({"name": t.name, "description": t.description, "depends_on": t.depends_on.iter().map(|d| d.node.to_string()).collect::<Vec<_>>()}))
            .collect();
        let tests: Vec<_> = m
            .tests
            .values()
            .map(|t| serde_json::json!({"name": t.name, "description": t.description, "tags": t.tags}))
            .collect();
        println!("{}", serde_json::json!({"tasks": tasks, "tests": tests}));
        return Ok(ExitCode::Ok);
    }
    let width = m
        .tasks
        .keys()
        .chain(m.tests.keys())
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0);
    let line = |name: &str, desc: Option<&str>, extra: String| match desc {
        Some(d) => println!("    {name:<width$} # {d}{extra}"),
        None if extra.is_empty() => println!("    {name}"),
        None => println!("    {name:<width$} #{extra}"),
    };
    if m.tasks.is_empty() && m.tests.is_empty() {
        println!("No tasks or tests in {}", m.path.display());
        return Ok(ExitCode::Ok);
    }
    if !m.tasks.is_empty() {
        println!("Tasks:");
        for t in m.tasks.values() {
            line(&t.name, t.description.as_deref(), String::new());
        }
    }
    if !m.tests.is_empty() {
        println!("Tests:");
        for t in m.tests.values() {
            let tags = if t.tags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", t.tags.join(", "))
            };
            line(&t.name, t.description.as_deref(), tags);
        }
    }
    Ok(ExitCode::Ok)
}
