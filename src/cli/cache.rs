//! `sanctuary cache stats` and `sanctuary cache gc`.

use super::Context;
use crate::cache::Cache;
use crate::error::{Error, ExitCode, Result};
use crate::manifest::{Duration, Size};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Entries, size and age of the cache.
    Stats,
    /// Remove the oldest entries until the cache fits the limits.
    Gc {
        /// Largest total size to keep, e.g. 2g.
        #[arg(long, value_name = "SIZE")]
        max_size: Option<Size>,
        /// Remove entries older than this, e.g. 30d.
        #[arg(long, value_name = "DURATION", value_parser = parse_age)]
        max_age: Option<Duration>,
    },
}

fn parse_age(s: &str) -> std::result::Result<Duration, String> {
    s.parse()
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn run(ctx: &Context, cmd: Command) -> Result<ExitCode> {
    let loaded = ctx.load()?;
    let cache = Cache::in_state_dir(&loaded.manifest.project.state_dir);
    let fail = |e: crate::cache::CacheError| Error::Io {
        message: "cache".into(),
        source: std::io::Error::other(e.to_string()),
    };
    match cmd {
        Command::Stats => {
            let s = cache.stats().map_err(fail)?;
            if ctx.json {
                println!(
                    "{}",
                    serde_json::json!({"entries": s.entries, "total_bytes": s.total_bytes, "oldest": s.oldest, "newest": s.newest, "per_node": s.per_node, "unreadable": s.unreadable})
                );
            } else {
                println!("{} entries, {}", s.entries, human(s.total_bytes));
                if let (Some(o), Some(n)) = (s.oldest, s.newest) {
                    println!("oldest {o}, newest {n}");
                }
                for (node, count) in &s.per_node {
                    println!("  {node}: {count}");
                }
                if s.unreadable > 0 {
                    println!("{} unreadable entries (gc removes them)", s.unreadable);
                }
            }
        }
        Command::Gc { max_size, max_age } => {
            if max_size.is_none() && max_age.is_none() {
                return Err(Error::usage(
                    "cache gc needs a limit",
                    "give --max-size SIZE, --max-age DURATION, or both",
                ));
            }
            let r = cache
                .gc(max_size.map(|s| s.0), max_age.map(|d| d.0))
                .map_err(fail)?;
            if ctx.json {
                println!(
                    "{}",
                    serde_json::json!({"removed": r.removed.len(), "freed_bytes": r.freed, "strays": r.strays})
                );
            } else {
                println!(
                    "removed {} entries, freed {}",
                    r.removed.len(),
                    human(r.freed)
                );
            }
        }
    }
    Ok(ExitCode::Ok)
}
