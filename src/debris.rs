//! Names that say which process is writing a temporary file or directory, and the test for
//! whether that process is gone, so that whatever a killed command left behind is swept by
//! the next one without touching what a live one is still writing.
//!
//! Every temporary sanctuary creates (beside a file it replaces, in a backup copy, in a
//! container during a sync) has a name holding [`MARK`] followed by the pid of its writer and
//! a dash: `.sanctuary-tmp-4242-Xy7…`, `.notes.txt.sanctuary-tmp-4242-…`. A name whose pid no
//! longer runs is debris. A recycled pid only delays a sweep; it never removes live work.

use std::fs;
use std::io;
use std::path::Path;

/// Marks a temporary name; followed by `<pid>-`.
pub const MARK: &str = ".sanctuary-tmp-";

/// The prefix of temporary names owned by this process: `.sanctuary-tmp-<pid>-`.
pub fn own_prefix() -> String {
    format!("{MARK}{}-", std::process::id())
}

/// The pid that owns `name`, when it is a marked temporary name.
pub fn owner(name: &str) -> Option<u32> {
    let rest = &name[name.find(MARK)? + MARK.len()..];
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// Whether process `pid` still runs (this process always does).
pub fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    // EPERM means it runs under another user: alive.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) != Err(nix::errno::Errno::ESRCH)
}

/// The machine this process runs on, as its kernel names it: what a pid is checked against
/// when an object (a container, a volume) may be shared by several machines or pid
/// namespaces through one engine. Empty when it cannot be read.
pub fn host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default()
    })
}

/// Whether the process `pid` on machine `host` is known to be gone: only a process of this
/// machine can be checked, so one of another machine never is.
pub fn gone(host: &str, pid: u32) -> bool {
    host == self::host() && !alive(pid)
}

/// Whether `name` is a temporary left by a process that no longer runs.
pub fn is_orphan(name: &str) -> bool {
    owner(name).is_some_and(|pid| !alive(pid))
}

/// What a sweep found (or removed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Debris {
    /// Files and directories.
    pub entries: usize,
    /// Bytes they held.
    pub bytes: u64,
}

impl Debris {
    /// Adds another sweep's findings.
    pub fn add(&mut self, other: Debris) {
        self.entries += other.entries;
        self.bytes += other.bytes;
    }
}

fn size_of(path: &Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| size_of(&e.path())).sum())
            .unwrap_or(0),
        Ok(md) => md.len(),
        Err(_) => 0,
    }
}

/// The orphaned temporaries directly in `dir` (not below it); removes them when `remove`.
/// A missing directory holds none.
pub fn sweep(dir: &Path, remove: bool) -> io::Result<Debris> {
    sweep_where(dir, remove, |_| true)
}

/// As [`sweep`], limited to the names `wanted` accepts: for a directory that is not ours
/// (the parent of a restore target), where only what one kind of work leaves is touched.
pub fn sweep_where(dir: &Path, remove: bool, wanted: impl Fn(&str) -> bool) -> io::Result<Debris> {
    let mut found = Debris::default();
    let entries = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_orphan(name) || !wanted(name) {
            continue;
        }
        let path = entry.path();
        found.entries += 1;
        found.bytes += size_of(&path);
        if remove {
            let removed = if entry.file_type()?.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid that does not run: the highest possible one is never handed out in tests.
    fn dead_pid() -> u32 {
        let max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4_194_304);
        assert!(!alive(max), "pid {max} should not run");
        max
    }

    #[test]
    fn names_carry_their_owner() {
        assert_eq!(owner(".sanctuary-tmp-42-abc"), Some(42));
        assert_eq!(owner(".notes.txt.sanctuary-tmp-7-123"), Some(7));
        assert_eq!(owner(".tmpAbc"), None);
        assert_eq!(owner(".sanctuary-tmp-x-1"), None);
        assert!(own_prefix().starts_with(MARK));
        assert_eq!(
            owner(&format!("{}z", own_prefix())),
            Some(std::process::id())
        );
    }

    #[test]
    fn a_sweep_removes_only_what_dead_processes_left() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dead_pid();
        fs::write(dir.path().join(format!("{MARK}{dead}-a")), "12345").unwrap();
        fs::create_dir(dir.path().join(format!("{MARK}{dead}-d"))).unwrap();
        fs::write(dir.path().join(format!("{MARK}{dead}-d/x")), "123").unwrap();
        let mine = dir.path().join(format!("{}b", own_prefix()));
        fs::write(&mine, "live").unwrap();
        fs::write(dir.path().join("keep.txt"), "user data").unwrap();

        let seen = sweep(dir.path(), false).unwrap();
        assert_eq!(
            seen,
            Debris {
                entries: 2,
                bytes: 8
            }
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            4,
            "a look removes nothing"
        );

        assert_eq!(sweep(dir.path(), true).unwrap(), seen);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                mine.file_name().unwrap().to_string_lossy().into_owned(),
                "keep.txt".into()
            ]
        );
        assert_eq!(
            sweep(&dir.path().join("missing"), true).unwrap(),
            Debris::default()
        );
    }

    #[test]
    fn a_limited_sweep_leaves_what_it_was_not_asked_about() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dead_pid();
        fs::write(dir.path().join(format!(".a{MARK}{dead}-1")), "x").unwrap();
        fs::write(dir.path().join(format!(".b{MARK}{dead}-1")), "x").unwrap();
        let swept = sweep_where(dir.path(), true, |n| n.starts_with(".a")).unwrap();
        assert_eq!(swept.entries, 1);
        assert!(dir.path().join(format!(".b{MARK}{dead}-1")).exists());
    }

    #[test]
    fn only_processes_of_this_machine_are_known_gone() {
        let dead = dead_pid();
        assert!(gone(host(), dead));
        assert!(!gone(host(), std::process::id()));
        assert!(!gone("some-other-machine", dead));
    }
}
