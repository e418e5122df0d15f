//! The command line: argument parsing with clap and dispatch to one module per command.
//! Each command returns `Result<ExitCode>`; `run` prints errors and maps them to exit codes.

mod apply;
mod backup;
mod cache;
mod ci;
mod data;
mod drift;
mod engine;
mod events;
mod follow;
mod graph;
mod history;
mod lifecycle;
mod list;
mod mcp;
pub mod output;
mod proxy;
mod run;
mod stack;
mod supervise;
mod switch;
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

    /// Switch a profile on: its services join the stack (repeatable; adds to
    /// SANCTUARY_PROFILES).
    #[arg(long = "profile", value_name = "NAME", global = true)]
    pub profiles: Vec<String>,

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
    #[command(alias = "ps")]
    Status,
    /// Stream service logs, prefixed by service.
    Logs(stack::LogsArgs),
    /// Watch the project's engine events as they happen (start, die, health, oom…).
    Events(events::Args),
    /// Serve the project as MCP tools over stdio (for Claude Code, Claude Desktop…).
    Mcp(mcp::Args),
    /// Watch over the stack: restart unhealthy services, run scheduled backups and watched
    /// syncs, send alerts, serve metrics (until Ctrl-C).
    Supervise(supervise::Args),
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
    /// What changed outside sanctuary since the last generation (exit 2 when anything did).
    Drift,
    /// Apply each new commit of a git branch, as it arrives (GitOps).
    Follow(follow::Args),
    /// Send a blue-green service's traffic back to the container it replaced (keep-previous).
    Switch(switch::Args),
    /// Stop services' containers (all when none), dependents first; nothing is removed.
    Stop(lifecycle::Args),
    /// Start services' stopped containers (all when none), waiting until each is healthy.
    Start(lifecycle::Args),
    /// Stop, then start, services (all when none).
    Restart(lifecycle::Args),
    /// The processes running in each service's container.
    Top(lifecycle::Args),
    /// Run a command in a service's running container; its exit code is sanctuary's.
    Exec(lifecycle::ExecArgs),
    /// Print a shell completion script: `sanctuary completions bash > /etc/bash_completion.d/sanctuary`.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff): `sanctuary man | man -l -`.
    Man,
    /// The TCP proxy of blue-green services (runs inside their proxy containers).
    #[command(subcommand)]
    Proxy(proxy::Command),
    /// `sanctuary TASK [ARGS…]` runs a task, as `sanctuary run TASK -- ARGS…` does.
    #[command(external_subcommand)]
    External(Vec<String>),
}

/// The service `name` of `m`, or the usage error every command gives for an unknown one.
pub(crate) fn service<'m>(m: &'m manifest::Manifest, name: &str) -> Result<&'m manifest::Service> {
    m.services.get(name).ok_or_else(|| Error::UnknownTarget {
        what: "service",
        name: name.to_string(),
        help: manifest::diagnostic::did_you_mean(name, m.services.keys().map(String::as_str))
            .unwrap_or_else(|| {
                format!(
                    "services: {}",
                    m.services.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }),
    })
}

/// Writes `bytes` to stdout; a reader that stops early (`| head`) is not an error.
fn print_all(bytes: &[u8], what: &str) -> Result<ExitCode> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(bytes) {
        Ok(()) => Ok(ExitCode::Ok),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::Ok),
        Err(source) => Err(Error::Io {
            message: format!("cannot write {what}"),
            source,
        }),
    }
}

/// Parses arguments, runs the command, prints any error, and returns the exit code.
pub fn run() -> i32 {
    init_logging();
    let cli = Cli::parse();
    if !cli.profiles.is_empty() {
        // Every manifest this command loads (the working one, a commit's, a generation's)
        // reads the same variable; set before any thread exists.
        let mut all: Vec<String> = std::env::var(manifest::PROFILES_VAR)
            .unwrap_or_default()
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(str::to_string)
            .collect();
        all.extend(cli.profiles.iter().cloned());
        std::env::set_var(manifest::PROFILES_VAR, all.join(","));
    }
    let json = cli.json;
    // `plan --detailed-exitcode` promises 1 for any error, as Terraform's does.
    let detailed = matches!(&cli.command, Command::Plan(a) if a.detailed_exitcode)
        || matches!(cli.command, Command::Drift);
    crate::observe::traces::start(&command_name(&cli.command));
    let code = match dispatch(cli) {
        Ok(code) => code.code(),
        Err(e) => {
            report_error(&e, json);
            if detailed {
                ExitCode::Failed.code()
            } else {
                e.exit_code().code()
            }
        }
    };
    crate::observe::traces::finish(code);
    code
}

/// The subcommand's name as typed (`apply`, `backups`), for the trace's root span.
fn command_name(command: &Command) -> String {
    use clap::CommandFactory;
    let words: Vec<String> = std::env::args().skip(1).collect();
    Cli::command()
        .get_subcommands()
        .flat_map(|c| {
            std::iter::once(c.get_name().to_string()).chain(c.get_all_aliases().map(str::to_string))
        })
        .find(|name| words.iter().any(|w| w == name))
        .unwrap_or_else(|| {
            format!("{command:?}")
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or("")
                .to_lowercase()
        })
}

/// The variable that chooses which diagnostics reach stderr.
pub const LOG_VAR: &str = "SANCTUARY_LOG";

/// Diagnostics (`tracing` events) go to stderr, never stdout, which carries reports and
/// `--json`: warnings of sanctuary by default, more with `SANCTUARY_LOG` (filter directives
/// as `RUST_LOG` takes them: `debug`, `sanctuary::sync=trace,bollard=debug`). Each line
/// carries the time since the command started, so a slow phase shows where it is.
fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default = || EnvFilter::new("sanctuary=warn");
    let filter = match std::env::var(LOG_VAR) {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v).unwrap_or_else(|e| {
            eprintln!("warning: ignoring {LOG_VAR}={v:?}: {e}");
            default()
        }),
        _ => default(),
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!no_color && std::io::stderr().is_terminal())
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .try_init();
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
        Command::Events(args) => events::run(&ctx, args),
        Command::Supervise(args) => supervise::run(&ctx, args),
        Command::Mcp(args) => mcp::run(&ctx, args),
        Command::Test(args) => test::run(&ctx, args),
        Command::Ci(args) => ci::run(&ctx, args),
        Command::Sync(args) => sync::run(&ctx, args),
        Command::Backup(args) => backup::backup(&ctx, args),
        Command::Backups(cmd) => backup::backups(&ctx, cmd),
        Command::Restore(args) => backup::restore(&ctx, args),
        Command::History(args) => history::run(&ctx, args),
        Command::Rollback(args) => history::rollback(&ctx, args),
        Command::Drift => drift::run(&ctx),
        Command::Follow(args) => follow::run(&ctx, args),
        Command::Proxy(cmd) => proxy::run(cmd),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "sanctuary", &mut out);
            print_all(&out, "the completion script")
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|source| Error::Io {
                    message: "cannot render the man page".into(),
                    source,
                })?;
            print_all(&out, "the man page")
        }
        Command::Stop(args) => lifecycle::run(&ctx, lifecycle::Verb::Stop, args),
        Command::Start(args) => lifecycle::run(&ctx, lifecycle::Verb::Start, args),
        Command::Restart(args) => lifecycle::run(&ctx, lifecycle::Verb::Restart, args),
        Command::Exec(args) => lifecycle::exec(&ctx, args),
        Command::Top(args) => lifecycle::top(&ctx, args),
        Command::Switch(args) => switch::run(&ctx, args),
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

/// A manifest and where it came from.
pub struct Sourced {
    pub manifest: manifest::Manifest,
    /// Where the working-tree manifest is, or would be: under `--ref`, the machine's own
    /// paths (state, binds, backups) resolve beside it.
    pub at: PathBuf,
    /// The commit it was read from, under `--ref`.
    pub git: Option<crate::history::GitInfo>,
}

impl Context {
    /// The manifest `-f` names, or the nearest Sanctuary.kdl.
    fn manifest_path(&self) -> Result<PathBuf> {
        match &self.file {
            Some(f) => Ok(f.clone()),
            None => Ok(manifest::discover(&cwd()?)?),
        }
    }

    /// Finds and loads the manifest, printing its warnings to stderr.
    pub fn load(&self) -> Result<Loaded> {
        let loaded = manifest::load(&self.manifest_path()?)?;
        self.warn(&loaded);
        let declared = loaded.manifest.declared_profiles();
        for p in &loaded.manifest.active_profiles {
            if !declared.contains(p.as_str()) && !self.json {
                let help = crate::manifest::diagnostic::did_you_mean(p, declared.iter().copied())
                    .unwrap_or_else(|| "no service declares it".into());
                eprintln!("warning: profile `{p}` is active but no service has it ({help})");
            }
        }
        Ok(loaded)
    }

    /// The working manifest, for the commands that read the history (`history`, `rollback`,
    /// `drift`). When it does not load — an edit under way is often why one rolls back —
    /// the last generation's manifest stands in for it, found in the default state directory
    /// beside it, with a warning; without a history there, the load error stands.
    pub fn load_for_history(&self) -> Result<manifest::Manifest> {
        let path = self.manifest_path()?;
        let err = match self.load() {
            Ok(loaded) => return Ok(loaded.manifest),
            Err(e) => e,
        };
        let dir = path.parent().map(PathBuf::from).unwrap_or_default();
        let h = crate::history::History::in_state_dir(&dir.join(".sanctuary"));
        let Some(g) = h.last().ok().flatten().and_then(|n| h.get(n).ok()) else {
            return Err(err);
        };
        let name = format!("generation {} of {}", g.number, path.display());
        let Ok(stand_in) = manifest::load_text(&path, &name, &g.manifest) else {
            return Err(err);
        };
        if !self.json {
            output::eprint_diag(&err);
        }
        eprintln!(
            "warning: {} does not load, so generation {}'s manifest stands in for it here",
            path.display(),
            g.number
        );
        Ok(stand_in.manifest)
    }

    fn warn(&self, loaded: &Loaded) {
        if let Some(w) = &loaded.warnings {
            if !self.json {
                output::eprint_diag(w);
            }
        }
    }

    /// The working tree's manifest, or with `reference` the one in that commit, read with
    /// libgit2 and checked out under the state directory
    /// ([`crate::history::checkout`]).
    pub fn load_from(&self, reference: Option<&str>) -> Result<Sourced> {
        let Some(reference) = reference else {
            let manifest = self.load()?.manifest;
            return Ok(Sourced {
                at: manifest.path.clone(),
                manifest,
                git: None,
            });
        };
        self.load_commit(&self.working_at()?, reference)
    }

    /// Where the working tree's manifest is, or would be: it need not exist when the
    /// manifest is read from a commit, only its place matters.
    pub fn working_at(&self) -> Result<PathBuf> {
        match self.manifest_path() {
            Err(Error::Manifest(manifest::LoadError::NotFound { .. })) => {
                Ok(cwd()?.join(manifest::FILE_NAME))
            }
            other => std::path::absolute(other?).map_err(|source| Error::Io {
                message: "cannot read the current directory".into(),
                source,
            }),
        }
    }

    /// The manifest of commit `reference` of the repository holding `at`.
    pub fn load_commit(&self, at: &std::path::Path, reference: &str) -> Result<Sourced> {
        use crate::history::checkout;
        let ref_error = |e: checkout::RefError| Error::usage(e.to_string(), e.help());
        let resolved = checkout::resolve(at, reference).map_err(ref_error)?;
        let here = at.parent().unwrap_or(std::path::Path::new("/"));
        let name = format!("{} at {}", resolved.relative.display(), resolved.short());
        // Loaded first as if it stood in the working tree: a commit whose manifest is invalid
        // is refused before anything is written, and this says where the state directory is.
        let probe = manifest::load_text_with_env(at, &name, &resolved.text, here)?.manifest;
        let into = probe.project.state_dir.join(checkout::DIR_NAME);
        let tree = checkout::check_out(&resolved, &into).map_err(ref_error)?;
        let mut loaded = manifest::load_text_with_env(
            &tree.join(&resolved.relative),
            &name,
            &resolved.text,
            here,
        )?;
        self.warn(&loaded);
        let m = &mut loaded.manifest;
        checkout::keep_local_paths(m, &probe);
        // A project without a name takes the working directory's, not the checkout's.
        m.project.name = probe.project.name;
        m.project.state_dir = probe.project.state_dir;
        Ok(Sourced {
            manifest: loaded.manifest,
            at: at.to_path_buf(),
            git: Some(resolved.git_info()),
        })
    }
}

fn cwd() -> Result<PathBuf> {
    std::env::current_dir().map_err(|source| Error::Io {
        message: "cannot read the current directory".into(),
        source,
    })
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
