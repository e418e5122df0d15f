//! The command line: argument parsing with clap and dispatch to one module per command.
//! Each command returns `Result<ExitCode>`; `run` prints errors and maps them to exit codes.

mod graph;
mod list;
pub mod output;
mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{Error, ExitCode, Result};
use crate::manifest::{self, Loaded};

/// A declarative build tool and task runner for Docker stacks.
///
/// One KDL manifest (Sanctuary.kdl) declares images, volumes, networks, services, tasks, tests,
/// backups and sync rules. Run `sanctuary TASK` to run a task after its dependencies.
#[derive(Debug, Parser)]
#[command(
    name = "sanctuary",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Manifest to use instead of the nearest Sanctuary.kdl.
    #[arg(short = 'f', long = "file", global = true, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Machine-readable output: JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the manifest and report every problem in it.
    Validate,
    /// Show the dependency graph, whole or for some targets.
    Graph(graph::Args),
    /// List tasks and tests with their descriptions.
    List,
}

/// Parses arguments, runs the command, prints any error, and returns the exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    let json = cli.json;
    match dispatch(cli) {
        Ok(code) => code.code(),
        Err(e) => {
            report_error(&e, json);
            e.exit_code().code()
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let ctx = Context {
        file: cli.file,
        json: cli.json,
    };
    match cli.command {
        Command::Validate => validate::run(&ctx),
        Command::Graph(args) => graph::run(&ctx, args),
        Command::List => list::run(&ctx),
    }
}

/// What every command gets: where the manifest is and how to print.
pub struct Context {
    pub file: Option<PathBuf>,
    pub json: bool,
}

impl Context {
    /// Finds and loads the manifest, printing its warnings to stderr.
    pub fn load(&self) -> Result<Loaded> {
        let path = match &self.file {
            Some(f) => f.clone(),
            None => {
                let cwd = std::env::current_dir().map_err(|source| Error::Io {
                    message: "cannot read the current directory".into(),
                    source,
                })?;
                manifest::discover(&cwd)?
            }
        };
        let loaded = manifest::load(&path)?;
        if let Some(w) = &loaded.warnings {
            if !self.json {
                output::eprint_diag(w);
            }
        }
        Ok(loaded)
    }
}

fn report_error(e: &Error, json: bool) {
    if json {
        let rendered = output::render(e, false);
        let obj = serde_json::json!({
            "event": "error",
            "exit_code": e.exit_code().code(),
            "message": e.to_string(),
            "rendered": rendered,
        });
        println!("{obj}");
    }
    if !matches!(e, Error::Failed(_)) || !json {
        output::eprint_diag(e);
    }
}
