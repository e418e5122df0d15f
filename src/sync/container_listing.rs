//! What a container sync runs with `sh -c` inside the container, and the reading of what it
//! prints. Pure: scripts are constants, output is text in, records out.
//!
//! Listings are `stat -c` lines, each opened by a nonce chosen per call, so a file name that
//! holds a newline (or looks like a record) cannot be mistaken for another record: a line
//! that does not start with the nonce continues the name of the line before. Only POSIX `sh`
//! builtins, `find`, `stat`, `mv`, `rm` and `rmdir` are used (busybox has them all).

use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::container_tar::Owner;
use super::model::{EntryKind, RelPath};

/// Lists the root (`$1`) itself, then everything below it, as `stat -c "$2"` lines;
/// temporaries (names holding the debris mark) are not descended into and are printed with
/// `$3` instead. Fails (non-zero) when any part cannot be read: a partial listing would read
/// as deletions.
pub const LIST_SCRIPT: &str = r#"stat -c "$2" "$1" || exit 4
find "$1" -mindepth 1 -name '*.sanctuary-tmp-*' -prune -exec stat -c "$3" {} + -o -exec stat -c "$2" {} +"#;

/// `stat -c "$1"` of every further argument that exists (never following a final symlink);
/// missing ones print nothing.
pub const STAT_MANY_SCRIPT: &str = r#"f=$1; shift; stat -c "$f" "$@" 2>/dev/null; exit 0"#;

/// Moves a staged batch into place. `$1` the staging directory, `$2` the nonce, `$3` a count
/// n, then n directories that must not be symlinks (else nothing moves: exit 3, naming it);
/// then records: `D k DEST` moves the staged directory `t<k>` to DEST unless something is
/// there already; `F k DIR` moves every file staged in `g<k>` into the directory DIR (one
/// `mv` for the group; each rename replaces a file atomically); `N k DIR` likewise, but never
/// replaces a file that is there (`mv -n`). Prints `NONCE|D|k` for a
/// directory and `NONCE|F|PATH` for a staged file that did not move, then removes the stage.
pub const MOVE_SCRIPT: &str = r#"stage=$1; nonce=$2; n=$3; shift 3
while [ "$n" -gt 0 ]; do
  if [ -L "$1" ]; then echo "$nonce|link|$1"; rm -rf "$stage"; exit 3; fi
  shift; n=$((n-1))
done
while [ $# -ge 3 ]; do
  case $1 in
    D) if [ ! -e "$3" ] && [ ! -L "$3" ]; then mv -f "$stage/t$2" "$3" 2>/dev/null; fi
       if [ -e "$stage/t$2" ]; then echo "$nonce|D|$2"; fi ;;
    F|N) g="$stage/g$2"
       if [ "$1" = F ]; then o=-f; else o=-n; fi
       mv $o "$g"/* "$g"/.[!.]* "$g"/..?* "$3"/ 2>/dev/null
       for f in "$g"/* "$g"/.[!.]* "$g"/..?*; do
         if [ -e "$f" ] || [ -L "$f" ]; then echo "$nonce|F|$f"; fi
       done ;;
  esac
  shift 3
done
rm -rf "$stage""#;

/// Deletes a batch. `$1` the nonce, `$2` a count n, then n directories that must not be
/// symlinks (else nothing is deleted: exit 3); then the paths, contents before their
/// directories. One `rm` takes the files and links (it leaves directories), one `rmdir` the
/// directories in order (a directory still holding something stays). Prints `NONCE|PATH` for
/// each path still there.
pub const DELETE_MANY_SCRIPT: &str = r#"nonce=$1; n=$2; shift 2
while [ "$n" -gt 0 ]; do
  if [ -L "$1" ]; then echo "$nonce|link|$1"; exit 3; fi
  shift; n=$((n-1))
done
rm -f "$@" 2>/dev/null
rmdir "$@" 2>/dev/null
for p in "$@"; do if [ -e "$p" ] || [ -L "$p" ]; then echo "$nonce|$p"; fi; done
exit 0"#;

/// One path as `stat` saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Size in bytes (a symlink's is the length of its target).
    pub size: u64,
    /// Modification time in milliseconds (whole seconds).
    pub mtime_ms: i64,
    /// Owner.
    pub owner: Owner,
}

/// One record of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A path and what is there; `None` for kinds that are not synced (fifos, devices).
    Stat(String, Option<Listed>),
    /// A temporary left in the tree (by this or another process).
    Temp(String),
}

/// A fresh nonce for one call.
pub fn nonce() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{}-{}-{:?}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
    );
    format!("s{}", &hex::encode(Sha256::digest(seed.as_bytes()))[..15])
}

/// The `stat -c` format of a [`Record::Stat`] line.
pub fn stat_format(nonce: &str) -> String {
    format!("{nonce}|%f|%s|%Y|%u|%g|%n")
}

/// The `stat -c` format of a [`Record::Temp`] line.
pub fn temp_format(nonce: &str) -> String {
    format!("{nonce}!|%n")
}

/// Splits output into records: lines opened by `nonce` start one; any other line continues
/// the last name (it held a newline). Returns each record's text after the nonce.
pub fn split_records(output: &str, nonce: &str) -> Vec<String> {
    let mut records: Vec<String> = Vec::new();
    let body = output.strip_suffix('\n').unwrap_or(output);
    for line in body.split('\n') {
        match line.strip_prefix(nonce) {
            Some(rest) => records.push(rest.to_string()),
            None => {
                if let Some(last) = records.last_mut() {
                    last.push('\n');
                    last.push_str(line);
                }
            }
        }
    }
    records
}

fn kind_of(raw_mode: u32) -> Option<EntryKind> {
    match raw_mode & 0o170000 {
        0o040000 => Some(EntryKind::Dir),
        0o100000 => Some(EntryKind::File),
        0o120000 => Some(EntryKind::Symlink),
        _ => None,
    }
}

/// Reads listing output (lines in [`stat_format`] and [`temp_format`]).
pub fn parse_records(output: &str, nonce: &str) -> Result<Vec<Record>, String> {
    let bad = |r: &str| format!("unexpected listing line `{}`", r.escape_debug());
    split_records(output, nonce)
        .into_iter()
        .map(|r| {
            if let Some(name) = r.strip_prefix("!|") {
                return Ok(Record::Temp(name.to_string()));
            }
            let fields: Vec<&str> = r.splitn(7, '|').collect();
            let [_, mode, size, mtime, uid, gid, name] = fields[..] else {
                return Err(bad(&r));
            };
            let mode = u32::from_str_radix(mode, 16).map_err(|_| bad(&r))?;
            let listed = kind_of(mode)
                .map(|kind| -> Result<Listed, String> {
                    Ok(Listed {
                        kind,
                        mode: mode & 0o7777,
                        size: size.parse().map_err(|_| bad(&r))?,
                        mtime_ms: mtime
                            .parse::<i64>()
                            .map_err(|_| bad(&r))?
                            .saturating_mul(1000),
                        owner: Owner {
                            uid: uid.parse().map_err(|_| bad(&r))?,
                            gid: gid.parse().map_err(|_| bad(&r))?,
                        },
                    })
                })
                .transpose()?;
            Ok(Record::Stat(name.to_string(), listed))
        })
        .collect()
}

/// A path printed by the container, relative to `root` (as [`ContainerSide`] spells it:
/// empty for `/`); `None` for the root itself, paths outside it, and names that are not
/// usable relative paths (or were not UTF-8, which the exec output shows as U+FFFD).
///
/// [`ContainerSide`]: super::ContainerSide
pub fn relative(root: &str, abs: &str) -> Option<RelPath> {
    let rest = abs.strip_prefix(root)?.strip_prefix('/')?;
    if rest.contains('\u{FFFD}') {
        return None;
    }
    RelPath::new(rest).ok()
}

/// Every ancestor directory of `dir` (relative) up to the root, `dir` included, as absolute
/// container paths under `root`.
pub fn ancestors(root: &str, dir: Option<&RelPath>) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = dir.cloned();
    while let Some(d) = cur {
        out.push(format!("{root}/{d}"));
        cur = d.parent();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_names_with_newlines_and_pipes() {
        let n = "sX";
        let out = "sX|41ed|4096|10|0|0|/r\nsX|81a4|3|20|1000|1000|/r/a|b\nsX|81a4|5|30|0|0|/r/two\nlines\nsX!|/r/.x.sanctuary-tmp-1-2\nsX|1180|0|1|0|0|/r/fifo\n";
        let recs = parse_records(out, n).unwrap();
        assert_eq!(recs.len(), 5);
        assert_eq!(
            recs[1],
            Record::Stat(
                "/r/a|b".into(),
                Some(Listed {
                    kind: EntryKind::File,
                    mode: 0o644,
                    size: 3,
                    mtime_ms: 20_000,
                    owner: Owner {
                        uid: 1000,
                        gid: 1000
                    },
                })
            )
        );
        assert!(matches!(&recs[2], Record::Stat(name, Some(_)) if name == "/r/two\nlines"));
        assert_eq!(recs[3], Record::Temp("/r/.x.sanctuary-tmp-1-2".into()));
        assert_eq!(recs[4], Record::Stat("/r/fifo".into(), None));
        assert!(parse_records("sX|zz|1|1|0|0|/r/x\n", n).is_err());
        assert!(nonce() != nonce());
    }

    #[test]
    fn paths_are_taken_relative_to_the_root() {
        assert_eq!(relative("/r", "/r/a/b").unwrap().as_str(), "a/b");
        assert_eq!(relative("", "/etc/x").unwrap().as_str(), "etc/x");
        assert!(relative("/r", "/r").is_none());
        assert!(relative("/r", "/rx/a").is_none());
        assert!(relative("/r", "/r/bad\u{FFFD}").is_none());
        let d = RelPath::new("a/b").unwrap();
        assert_eq!(ancestors("/r", Some(&d)), ["/r/a/b", "/r/a"]);
        assert!(ancestors("/r", None).is_empty());
    }
}
