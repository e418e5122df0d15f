//! Running the manifest's backups against the project: `backup` (quiesce, read the source,
//! snapshot into the first copy, replicate to the others, resume), `restore` (verified tree
//! into a path or a volume, consumers stopped meanwhile), and the per-copy views `list`,
//! `verify` and `prune`.
//!
//! The library calls are synchronous file work; Docker steps run on the given runtime with
//! `block_on`, so this type is used from synchronous code: a command's main thread, or a
//! blocking thread the backup executor hands it to.
//!
//! Crash hygiene: `backup` and `restore` first remove what interrupted runs of the project
//! left ([`Runner::sweep`]): temporaries in the local copies (and, for a restore, in the
//! remote ones, by age), stale staging directories beside a restore target, and helper
//! containers and staging volumes whose maker is gone. Live work is never touched. A
//! requested stop ([`Runner::stop`]) ends the work at the next safe point with
//! [`RunError::Interrupted`]; quiesced services are brought back all the same.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::backend::names;
use crate::backend::Backend;
use crate::manifest::{self, BackupSource, Manifest};

use super::archive::{ArchiveOptions, Source};
use super::catalog::{list_snapshots, Catalog};
use super::copies::{replicate, CopyOutcome, CopyTarget};
use super::error::BackupError;
use super::manifest::VerifyLevel;
use super::quiesce::{quiesce, resume, Journal};
use super::restore::{
    foreign_tar_stream, restore_foreign_archive, restore_into_dir, restore_tar_stream,
    sweep_staging, RestoreReport, Selector, VerifiedTarStream,
};
use super::retention::{prune, PruneReport};
use super::run_error::RunError;
use super::snapshot::{create_snapshot, BackupOutcome, BackupReport};
use super::special_bits::SpecialBits;
use super::stop::Stop;
use super::store::Store;
use super::sweep::sweep_copy;
use super::targets::{consumers, copy_targets, copy_targets_with, keep_policy, primary_dir};
use super::verify::{verify_all, verify_snapshot, VerifyReport};
use super::volume_io;
use crate::debris::Debris;

/// What happened in one copy during a backup.
#[derive(Debug, Clone)]
pub struct CopyLine {
    /// The copy's name in the manifest.
    pub copy: String,
    /// What happened, for people (`unchanged, snapshot X already exists`).
    pub message: String,
    /// Whether the copy holds the snapshot now.
    pub ok: bool,
}

/// The result of backing up one node.
#[derive(Debug, Clone)]
pub struct BackupRun {
    /// The snapshot in the first copy.
    pub report: BackupReport,
    /// One line per copy, the first copy first.
    pub copies: Vec<CopyLine>,
    /// What interrupted runs had left and this one removed.
    pub swept: Swept,
}

/// The result of one restore.
#[derive(Debug, Clone)]
pub struct RestoreRun {
    /// What was restored.
    pub report: RestoreReport,
    /// What interrupted runs had left and this one removed.
    pub swept: Swept,
}

/// What interrupted runs had left and a command removed ([`Runner::sweep`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Temporary files and directories: in copies, beside a restore target, in the state
    /// directory.
    pub files: Debris,
    /// Helper containers.
    pub containers: usize,
    /// Staging volumes.
    pub volumes: usize,
    /// What could not be swept, and why; the command goes on regardless.
    pub failures: Vec<String>,
}

impl Swept {
    /// One line for people, or `None` when nothing was removed.
    pub fn summary(&self) -> Option<String> {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = Vec::new();
        if self.files.entries > 0 {
            parts.push(format!(
                "{} ({} bytes)",
                plural(self.files.entries, "temporary file", "temporary files"),
                self.files.bytes
            ));
        }
        if self.containers > 0 {
            parts.push(plural(
                self.containers,
                "helper container",
                "helper containers",
            ));
        }
        if self.volumes > 0 {
            parts.push(plural(self.volumes, "staging volume", "staging volumes"));
        }
        (!parts.is_empty())
            .then(|| format!("removed what interrupted runs left: {}", parts.join(", ")))
    }

    /// `{"files", "bytes", "containers", "volumes", "failures"}`, for `--json` output.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "files": self.files.entries, "bytes": self.files.bytes,
            "containers": self.containers, "volumes": self.volumes,
            "failures": self.failures,
        })
    }

    fn note(&mut self, what: String, result: Result<Debris, impl std::fmt::Display>) {
        match result {
            Ok(d) => self.files.add(d),
            Err(e) => self.failures.push(format!("{what}: {e}")),
        }
    }
}

impl BackupRun {
    /// Whether every copy holds the snapshot.
    pub fn all_copies_ok(&self) -> bool {
        self.copies.iter().all(|c| c.ok)
    }
}

/// Where a restore ends up, resolved.
enum Target {
    Path(PathBuf),
    Volume {
        /// The Docker volume.
        name: String,
        /// The manifest's name for it, when it is one of the project's volumes.
        declared: Option<String>,
    },
}

/// Where a restore goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreTo {
    /// The backup's own source.
    Source,
    /// A host directory.
    Path(PathBuf),
    /// A Docker volume: a manifest volume name, or any other volume's full name.
    Volume(String),
}

impl RestoreTo {
    /// `--to` text: anything with a `/` or starting with `.` or `~` is a path, else a volume.
    pub fn parse(text: &str) -> Self {
        if text.contains('/') || text.starts_with('.') || text.starts_with('~') {
            RestoreTo::Path(PathBuf::from(text))
        } else {
            RestoreTo::Volume(text.to_string())
        }
    }
}

/// The project's backups with a Docker connection.
pub struct Runner {
    /// The manifest.
    pub manifest: Arc<Manifest>,
    /// The container engine; `None` when nothing asked of this runner needs it (backups of
    /// host paths with no services to quiesce).
    pub backend: Option<Arc<dyn Backend>>,
    /// Where Docker steps run.
    pub rt: tokio::runtime::Handle,
    /// Requested by SIGINT or SIGTERM: backups and restores end at the next safe point.
    pub stop: Stop,
}

/// What [`Runner::sweep`] looks at besides the local copies and the engine.
#[derive(Debug, Clone, Copy)]
pub enum SweepScope<'a> {
    /// Before a backup: remote copies are swept while they are replicated to.
    Backup,
    /// Before a restore: the remote copies too, and beside a restore into `target`.
    Restore { target: Option<&'a Path> },
}

fn lib(backup: &str, step: impl Into<String>) -> impl FnOnce(BackupError) -> RunError + '_ {
    let step = step.into();
    move |source| RunError::Library {
        backup: backup.to_string(),
        step,
        source: Box::new(source),
    }
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

/// Whether taking backup `b` needs the container engine.
pub fn backup_needs_engine(b: &manifest::Backup) -> bool {
    matches!(b.source, BackupSource::Volume(_)) || b.quiesce.is_some()
}

/// Whether restoring backup `b` to `to` needs the container engine.
pub fn restore_needs_engine(b: &manifest::Backup, to: &RestoreTo) -> bool {
    match to {
        RestoreTo::Path(_) => false,
        RestoreTo::Volume(_) => true,
        RestoreTo::Source => matches!(b.source, BackupSource::Volume(_)),
    }
}

impl Runner {
    /// Removes what interrupted runs left for backup `b`: debris in its local copies
    /// ([`super::sweep`]; the remote ones too for a restore), in the state directory and
    /// beside a restore target, and the project's helper containers and staging volumes whose
    /// maker is gone (when the engine is connected). Failures are collected, not raised: what
    /// is left only takes space, and the next run tries again.
    pub fn sweep(&self, b: &manifest::Backup, scope: SweepScope<'_>, now: DateTime<Utc>) -> Swept {
        let mut swept = Swept::default();
        let remote_too = matches!(scope, SweepScope::Restore { .. });
        for t in copy_targets(b) {
            let store = t.store.as_ref();
            if store.writers_are_local() || remote_too {
                swept.note(format!("copy {}", t.name), sweep_copy(store, now));
            }
        }
        let state = self.manifest.project.state_dir.join("backup");
        swept.note(
            format!("{}", state.display()),
            crate::debris::sweep(&state, true),
        );
        if let SweepScope::Restore {
            target: Some(target),
        } = scope
        {
            swept.note(
                format!("beside {}", target.display()),
                sweep_staging(target, true),
            );
        }
        let helpers = self.sweep_helpers();
        swept.containers = helpers.containers;
        swept.volumes = helpers.volumes;
        swept.failures.extend(helpers.failures);
        swept
    }

    /// Removes the project's helper containers and staging volumes whose maker is gone; nothing
    /// when the engine is not connected.
    pub fn sweep_helpers(&self) -> Swept {
        let mut swept = Swept::default();
        if let Some(backend) = &self.backend {
            let project = &self.manifest.project.name;
            match self
                .rt
                .block_on(volume_io::sweep_helpers(backend.as_ref(), project))
            {
                Ok(h) => {
                    swept.containers = h.containers;
                    swept.volumes = h.volumes;
                }
                Err(e) => swept
                    .failures
                    .push(format!("helper containers and staging volumes: {e}")),
            }
        }
        swept
    }

    /// `result`, or [`RunError::Interrupted`] when it failed because a stop was requested.
    fn or_interrupted<T>(&self, backup: &str, result: Result<T, RunError>) -> Result<T, RunError> {
        match result {
            Err(RunError::Resume { .. }) => result,
            Err(_) if self.stop.requested() => Err(RunError::Interrupted {
                backup: backup.to_string(),
            }),
            other => other,
        }
    }

    /// [`RunError::Interrupted`] when a stop was requested.
    fn check_stop(&self, backup: &str) -> Result<(), RunError> {
        if self.stop.requested() {
            return Err(RunError::Interrupted {
                backup: backup.to_string(),
            });
        }
        Ok(())
    }

    /// The engine, or an error naming the backup that needed it.
    fn engine(&self, backup: &str) -> Result<&Arc<dyn Backend>, RunError> {
        self.backend.as_ref().ok_or_else(|| RunError::NoEngine {
            backup: backup.to_string(),
        })
    }

    /// Takes one backup: sweep, quiesce, snapshot, replicate, and always resume.
    pub fn backup(&self, b: &manifest::Backup, now: DateTime<Utc>) -> Result<BackupRun, RunError> {
        let swept = self.sweep(b, SweepScope::Backup, now);
        let result = self
            .check_stop(&b.name)
            .and_then(|()| self.quiesced_backup(b, now));
        let mut run = self.or_interrupted(&b.name, result)?;
        run.swept.files.add(swept.files);
        run.swept.containers += swept.containers;
        run.swept.volumes += swept.volumes;
        run.swept.failures.extend(swept.failures);
        Ok(run)
    }

    fn quiesced_backup(
        &self,
        b: &manifest::Backup,
        now: DateTime<Utc>,
    ) -> Result<BackupRun, RunError> {
        let journal = Journal::new(&self.manifest.project.state_dir, &b.name);
        match &b.quiesce {
            Some(q) => self.quiesced(&b.name, q, &journal, || self.snapshot_and_replicate(b, now)),
            // Services an interrupted run left quiesced still come back.
            None if !journal.load().is_empty() => {
                let nothing = manifest::Quiesce {
                    mode: manifest::QuiesceMode::Stop,
                    services: Vec::new(),
                    pre: None,
                    post: None,
                };
                self.quiesced(&b.name, &nothing, &journal, || {
                    self.snapshot_and_replicate(b, now)
                })
            }
            None => self.snapshot_and_replicate(b, now),
        }
    }

    /// Runs `work` with the services of `q` quiesced, and always resumes them, together with
    /// any that an interrupted run of the same node left quiesced (from `journal`).
    fn quiesced<T>(
        &self,
        backup: &str,
        q: &manifest::Quiesce,
        journal: &Journal,
        work: impl FnOnce() -> Result<T, RunError>,
    ) -> Result<T, RunError> {
        let backend = self.engine(backup)?.as_ref();
        let left = journal.load();
        if !left.is_empty() {
            tracing::warn!(
                "backup {backup}: an interrupted run left services quiesced; they are brought back after this one: {left}"
            );
        }
        let (done, failed) =
            self.rt
                .block_on(quiesce(backend, &self.manifest, backup, q, journal, left));
        let result = match failed {
            Some(e) => Err(e),
            None => self.check_stop(backup).and_then(|()| work()),
        };
        let failures = self.rt.block_on(resume(backend, backup, done));
        if failures.is_empty() {
            journal.clear();
            return result;
        }
        Err(RunError::Resume {
            backup: backup.to_string(),
            failures,
            first: result.err().map(Box::new),
        })
    }

    /// Takes one backup and verifies the snapshot in full in the first copy: what must hold
    /// before the source may be deleted.
    pub fn backup_verified(
        &self,
        b: &manifest::Backup,
        now: DateTime<Utc>,
    ) -> Result<BackupRun, RunError> {
        let run = self.backup(b, now)?;
        let primary = primary_dir(b).ok_or_else(|| RunError::RemotePrimary {
            backup: b.name.clone(),
        })?;
        let id = run.report.id().to_string();
        let info = list_snapshots(&primary, now)
            .map_err(lib(&b.name, "listing the first copy"))?
            .of_backup(&b.name)
            .find(|s| s.id == id)
            .cloned()
            .ok_or_else(|| RunError::Library {
                backup: b.name.clone(),
                step: "finding the new snapshot".into(),
                source: Box::new(BackupError::SnapshotNotFound {
                    backup: b.name.clone(),
                    wanted: id.clone(),
                }),
            })?;
        let report = verify_snapshot(&primary, &info, VerifyLevel::Full, now)
            .map_err(lib(&b.name, "verifying the new snapshot"))?;
        if !report.ok() {
            return Err(RunError::VerifyFailed {
                backup: b.name.clone(),
                snapshot: id,
                copy: report.copy,
                problems: report.problems.iter().map(|p| p.to_string()).collect(),
            });
        }
        Ok(run)
    }

    fn snapshot_and_replicate(
        &self,
        b: &manifest::Backup,
        now: DateTime<Utc>,
    ) -> Result<BackupRun, RunError> {
        let primary = primary_dir(b).ok_or_else(|| RunError::RemotePrimary {
            backup: b.name.clone(),
        })?;
        let (source, helper) = match &b.source {
            BackupSource::Path(p) => (Source::from_dir(p.clone()), None),
            BackupSource::Volume(v) => {
                let volume = names::volume(&self.manifest.project.name, v);
                let (helper, reader) = self.rt.block_on(volume_io::open_volume(
                    self.engine(&b.name)?.clone(),
                    &self.manifest.project.name,
                    &b.name,
                    &volume,
                    &self.stop,
                ))?;
                let source = Source::TarStream {
                    reader: Box::new(reader),
                    strip_components: 1,
                };
                (source, Some(helper))
            }
        };
        let opts = ArchiveOptions {
            level: b.level,
            stat_cache: matches!(b.source, BackupSource::Path(_)).then(|| {
                self.manifest
                    .project
                    .state_dir
                    .join("backup")
                    .join(format!("{}.statcache", b.name))
            }),
            stop: self.stop.clone(),
            ..Default::default()
        };
        let report = create_snapshot(&primary, &b.name, source, &opts, now)
            .map_err(lib(&b.name, "creating the snapshot"));
        if let Some(helper) = helper {
            let closed = self
                .rt
                .block_on(helper.close(self.engine(&b.name)?.as_ref(), &b.name));
            // The snapshot's own failure is the one worth reporting.
            if report.is_ok() {
                closed?;
            }
        }
        let report = report?;
        let targets = copy_targets_with(b, &self.stop);
        let mut lines = vec![CopyLine {
            copy: targets.first().map(|t| t.name.clone()).unwrap_or_default(),
            message: report.summary(),
            ok: true,
        }];
        let info = match &report.outcome {
            BackupOutcome::Unchanged(info) => info.clone(),
            BackupOutcome::Created(m) => list_snapshots(&primary, now)
                .map_err(lib(&b.name, "listing the first copy"))?
                .of_backup(&b.name)
                .find(|s| s.id == m.id)
                .cloned()
                .ok_or_else(|| RunError::Library {
                    backup: b.name.clone(),
                    step: "finding the new snapshot".into(),
                    source: Box::new(BackupError::SnapshotNotFound {
                        backup: b.name.clone(),
                        wanted: m.id.clone(),
                    }),
                })?,
        };
        let mut swept = Swept::default();
        for target in targets.iter().skip(1) {
            // Between copies: each one so far holds the snapshot whole or not at all.
            self.check_stop(&b.name)?;
            let replicated = replicate(&primary, &info, target, now, &self.stop);
            if let Ok(r) = &replicated {
                swept.files.add(r.swept);
            }
            let line = match replicated.map(|r| r.outcome) {
                Ok(CopyOutcome::Copied) => CopyLine {
                    copy: target.name.clone(),
                    message: format!("copied snapshot {} (sha256 checked)", short(&info.id)),
                    ok: true,
                },
                Ok(CopyOutcome::AlreadyPresent) => CopyLine {
                    copy: target.name.clone(),
                    message: format!("unchanged, snapshot {} already exists", short(&info.id)),
                    ok: true,
                },
                Err(BackupError::Stopped) => {
                    return Err(RunError::Interrupted {
                        backup: b.name.clone(),
                    })
                }
                Err(e) => CopyLine {
                    copy: target.name.clone(),
                    message: format!("failed: {e}"),
                    ok: false,
                },
            };
            lines.push(line);
        }
        Ok(BackupRun {
            report,
            copies: lines,
            swept,
        })
    }

    /// Restores a snapshot of `b` to `to`, after sweeping what interrupted runs left. The
    /// snapshot is verified in full before anything is touched; copies are tried in order.
    pub fn restore(
        &self,
        b: &manifest::Backup,
        which: &Selector,
        to: &RestoreTo,
        now: DateTime<Utc>,
    ) -> Result<RestoreRun, RunError> {
        let target = self.restore_target(b, to);
        let swept = self.sweep_before_restore(b, &target, now);
        let result = self
            .check_stop(&b.name)
            .and_then(|()| self.restore_snapshot(b, which, target, now));
        let report = self.or_interrupted(&b.name, result)?;
        Ok(RestoreRun { report, swept })
    }

    fn sweep_before_restore(
        &self,
        b: &manifest::Backup,
        target: &Target,
        now: DateTime<Utc>,
    ) -> Swept {
        let target = match target {
            Target::Path(p) => Some(p.as_path()),
            Target::Volume { .. } => None,
        };
        self.sweep(b, SweepScope::Restore { target }, now)
    }

    fn restore_snapshot(
        &self,
        b: &manifest::Backup,
        which: &Selector,
        target: Target,
        now: DateTime<Utc>,
    ) -> Result<RestoreReport, RunError> {
        let targets = copy_targets_with(b, &self.stop);
        let stores: Vec<&dyn Store> = targets.iter().map(|t| t.store.as_ref()).collect();
        match target {
            Target::Path(p) => restore_into_dir(&stores, &b.name, which, &p, now, &self.stop)
                .map_err(lib(&b.name, format!("restoring into {}", p.display()))),
            Target::Volume { name, declared } => {
                let spool = spool_dir(b);
                let (stream, report) =
                    restore_tar_stream(&stores, &b.name, which, &spool, now, &self.stop)
                        .map_err(lib(&b.name, "verifying the snapshot"))?;
                self.restore_volume(b, &name, declared.as_deref(), stream)?;
                Ok(report)
            }
        }
    }

    /// Restores a `.tar.zst` made by another tool (`tar --zstd -cf`) to `to`, as a restore of
    /// `b` would: read to the end and checked for entries escaping the target first, then
    /// swapped in the same way; `bits` says whether setuid and setgid bits survive. There is
    /// no manifest, so the report says it is unverified.
    pub fn restore_archive(
        &self,
        b: &manifest::Backup,
        archive: &Path,
        to: &RestoreTo,
        bits: SpecialBits,
        now: DateTime<Utc>,
    ) -> Result<RestoreRun, RunError> {
        let target = self.restore_target(b, to);
        let swept = self.sweep_before_restore(b, &target, now);
        let step = format!("restoring {}", archive.display());
        let result = self.check_stop(&b.name).and_then(|()| match target {
            Target::Path(p) => {
                restore_foreign_archive(archive, &p, bits, &self.stop).map_err(lib(&b.name, step))
            }
            Target::Volume { name, declared } => {
                let (stream, report) = foreign_tar_stream(archive, &spool_dir(b), bits, &self.stop)
                    .map_err(lib(&b.name, step))?;
                self.restore_volume(b, &name, declared.as_deref(), stream)?;
                Ok(report)
            }
        });
        let report = self.or_interrupted(&b.name, result)?;
        Ok(RestoreRun { report, swept })
    }

    /// Where a restore of `b` to `to` goes.
    fn restore_target(&self, b: &manifest::Backup, to: &RestoreTo) -> Target {
        let project = &self.manifest.project.name;
        match (to, &b.source) {
            (RestoreTo::Path(p), _) | (RestoreTo::Source, BackupSource::Path(p)) => {
                Target::Path(p.clone())
            }
            (RestoreTo::Source, BackupSource::Volume(v)) => Target::Volume {
                name: names::volume(project, v),
                declared: Some(v.clone()),
            },
            (RestoreTo::Volume(v), _) if self.manifest.volumes.contains_key(v) => Target::Volume {
                name: names::volume(project, v),
                declared: Some(v.clone()),
            },
            (RestoreTo::Volume(v), _) => Target::Volume {
                name: v.clone(),
                declared: None,
            },
        }
    }

    /// Replaces the contents of Docker volume `volume` (the manifest's volume `declared`, if
    /// it is one) with the tar stream `stream`: staged first, then swapped in with the
    /// volume's consumers stopped.
    fn restore_volume(
        &self,
        b: &manifest::Backup,
        volume: &str,
        declared: Option<&str>,
        stream: VerifiedTarStream,
    ) -> Result<(), RunError> {
        let project = &self.manifest.project.name;
        let backend = self.engine(&b.name)?.as_ref();
        // Unpacked while the volume and its consumers are untouched: a failure here changes
        // nothing.
        let staging = self.rt.block_on(volume_io::stage_volume(
            backend, project, &b.name, volume, stream, &self.stop,
        ))?;
        // The swap below runs to its end once started: this is the last point to stop at.
        if self.stop.requested() {
            let _ = self.rt.block_on(backend.remove_volume(&staging));
            return Err(RunError::Interrupted {
                backup: b.name.clone(),
            });
        }
        let services = declared
            .map(|v| consumers(&self.manifest, v))
            .unwrap_or_default();
        let q = manifest::Quiesce {
            mode: manifest::QuiesceMode::Stop,
            services,
            pre: None,
            post: None,
        };
        let labels = declared
            .map(|v| names::labels(project, &format!("volume.{v}"), None))
            .unwrap_or_default();
        let journal = Journal::new(&self.manifest.project.state_dir, &b.name);
        let result = self.quiesced(&b.name, &q, &journal, || {
            self.rt.block_on(async {
                backend
                    .ensure_volume(volume, &labels)
                    .await
                    .map_err(|source| RunError::Docker {
                        backup: b.name.clone(),
                        step: format!("creating volume {volume}"),
                        source: Box::new(source),
                    })?;
                volume_io::swap_in(backend, project, &b.name, &staging, volume).await
            })
        });
        if result.is_err() {
            // The snapshot is still in its copies; a staging volume would only take space.
            let _ = self.rt.block_on(backend.remove_volume(&staging));
        }
        result
    }
}

/// Where a restore of `b` into a volume spools its tar stream: beside the first copy when it
/// is local, since the system temp dir may be small.
fn spool_dir(b: &manifest::Backup) -> PathBuf {
    primary_dir(b)
        .map(|d| d.root().to_path_buf())
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

/// Each copy's catalog (or why it could not be listed), in copy order.
pub fn list_copies(
    b: &manifest::Backup,
    now: DateTime<Utc>,
) -> Vec<(CopyTarget, Result<Catalog, BackupError>)> {
    copy_targets(b)
        .into_iter()
        .map(|t| {
            let c = list_snapshots(t.store.as_ref(), now);
            (t, c)
        })
        .collect()
}

/// Verifies every snapshot of the backup in every copy.
pub fn verify_copies(
    b: &manifest::Backup,
    level: VerifyLevel,
    now: DateTime<Utc>,
) -> Vec<(String, Result<Vec<VerifyReport>, BackupError>)> {
    copy_targets(b)
        .into_iter()
        .map(|t| {
            let r = verify_all(t.store.as_ref(), Some(&b.name), level, now);
            (t.name, r)
        })
        .collect()
}

/// Applies the `keep` policy in every copy, keeping the snapshots in `pinned` (id → why).
pub fn prune_copies(
    b: &manifest::Backup,
    pinned: &std::collections::BTreeMap<String, String>,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Vec<(String, Result<PruneReport, BackupError>)> {
    let policy = keep_policy(&b.keep);
    copy_targets(b)
        .into_iter()
        .map(|t| {
            let r = prune(t.store.as_ref(), &b.name, &policy, pinned, now, dry_run);
            (t.name, r)
        })
        .collect()
}
