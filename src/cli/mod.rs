//! The command line: argument parsing with clap and dispatch to one module per command.
//! Each command returns `Result<ExitCode>`; `run` prints errors and maps them to exit codes.

mod apply;
mod backup;
mod cache;
mod ci;
mod engine;
mod graph;
mod history;
mod list;
pub mod output;
mod run;
mod stack;
mod sync;
mod test;
mod validate;
mod why;

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
    /// Run tasks after their dependencies, skipping what is up to date.
    Run(run::Args),
    /// Explain why a node would change now (a task, or any node as `kind.name`).
    Why(why::Args),
    /// Inspect and trim the task cache.
    #[command(subcommand)]
    Cache(cache::Command),
    /// Show what apply would change, and why.
    Plan(apply::PlanArgs),
    /// Converge Docker to the manifest.
    Apply(apply::ApplyArgs),
    /// Remove the project's containers and networks (volumes with --volumes, after backups).
    Destroy(stack::DestroyArgs),
    /// Each service's state, health, uptime, ports and image.
    Status,
    /// Stream service logs, prefixed by service.
    Logs(stack::LogsArgs),
    /// Run tests after bringing up what they need; JUnit with --junit.
    Test(test::Args),
    /// Validate, apply, test and tear the stack down, for CI.
    Ci(ci::Args),
    /// Sync host directories with volumes or containers (`sync status` shows their state).
    Sync(sync::Args),
    /// Take backups: quiesce, snapshot, copy to every copy.
    Backup(backup::BackupArgs),
    /// List, verify or prune the snapshots of the backups.
    #[command(subcommand)]
    Backups(backup::BackupsCommand),
    /// Restore a backup (verified first) into its volume or path, or another one.
    Restore(backup::RestoreArgs),
    /// List the generations every apply records (`history show N` prints one).
    History(history::Args),
    /// Go back to an earlier generation: its manifest and the image ids it ran.
    Rollback(history::RollbackArgs),
    /// `sanctuary TASK [ARGS…]` runs a task, as `sanctuary run TASK -- ARGS…` does.
    #[command(external_subcommand)]
    External(Vec<String>),
}

/// Parses arguments, runs the command, prints any error, and returns the exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    let json = cli.json;
    // `plan --detailed-exitcode` promises 1 for any error, as Terraform's does.
    let detailed = matches!(&cli.command, Command::Plan(a) if a.detailed_exitcode);
    match dispatch(cli) {
        Ok(code) => code.code(),
        Err(e) => {
            report_error(&e, json);
            if detailed {
                ExitCode::Failed.code()
            } else {
                e.exit_code().code()
            }
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
        Command::Run(args) => run::run(&ctx, args),
        Command::Why(args) => why::run(&ctx, args),
        Command::Cache(cmd) => cache::run(&ctx, cmd),
        Command::Plan(args) => apply::plan(&ctx, args),
        Command::Apply(args) => apply::apply(&ctx, args),
        Command::Destroy(args) => stack::destroy(&ctx, args),
        Command::Status => stack::status(&ctx),
        Command::Logs(args) => stack::logs(&ctx, args),
        Command::Test(args) => test::run(&ctx, args),
        Command::Ci(args) => ci::run(&ctx, args),
        Command::Sync(args) => sync::run(&ctx, args),
        Command::Backup(args) => backup::backup(&ctx, args),
        Command::Backups(cmd) => backup::backups(&ctx, cmd),
        Command::Restore(args) => backup::restore(&ctx, args),
        Command::History(args) => history::run(&ctx, args),
        Command::Rollback(args) => history::rollback(&ctx, args),
        Command::External(words) => {
            let (tasks, args) = split_external(words);
            // Without a manifest, a word that is not a command cannot be a task either.
            let loaded = match ctx.load() {
                Err(Error::Manifest(manifest::LoadError::NotFound { .. })) => {
                    let word = tasks.first().cloned().unwrap_or_default();
                    return Err(Error::usage(
                        format!("`{word}` is not a sanctuary command, and there is no Sanctuary.kdl here to find a task of that name"),
                        "`sanctuary --help` lists the commands; `sanctuary list` lists a manifest's tasks",
                    ));
                }
                other => other?,
            };
            run::run_loaded(
                &ctx,
                loaded.manifest,
                run::Args {
                    tasks,
                    args,
                    opts: run::RunOpts {
                        jobs: None,
                        fail_fast: false,
                        force: false,
                    },
                },
            )
        }
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
            "message": crate::secrets::mask(&e.to_string()),
            "rendered": crate::secrets::mask(&rendered),
        });
        println!("{obj}");
    }
    if !matches!(e, Error::Failed(_)) || !json {
        output::eprint_diag(e);
    }
}

/// `sanctuary build -- --release` → tasks `[build]`, args `[--release]`;
/// `sanctuary build test` → tasks `[build, test]`.
fn split_external(words: Vec<String>) -> (Vec<String>, Vec<String>) {
    match words.iter().position(|w| w == "--") {
        Some(i) => (words[..i].to_vec(), words[i + 1..].to_vec()),
        None => (words, Vec::new()),
    }
}
