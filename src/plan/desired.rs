//! What the manifest wants: for every node kind, its printable [`Key`] (the same struct tasks
//! and tests use, so `why` explains any node) and, for Docker objects, the spec handed to the
//! backend. Secret values appear only in the container spec for the backend; keys carry keyed
//! hashes of them instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::backend::context::context_entries;
use crate::backend::names;
use crate::backend::{self, ContainerSpec, ImageBuild};
use crate::fingerprint::inputs::InputFile;
use crate::fingerprint::salt::Salt;
use crate::fingerprint::{Key, Spec, StatCache};
use crate::manifest::{
    Backup, ImageRef, ImageSource, Kind, Manifest, MountSource, NodeId, RestartPolicy, Service,
    Sync,
};

/// Why desired state could not be computed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DesiredError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error("image `{image}`: {source}")]
    Context {
        image: String,
        #[source]
        source: backend::BackendError,
    },
    #[error("image `{image}`: cannot hash the build context file {}", path.display())]
    HashContext {
        image: String,
        path: PathBuf,
        #[source]
        source: crate::fingerprint::StatCacheError,
    },
    #[error("bind mount source {} of service `{service}` does not exist", path.display())]
    #[diagnostic(help("create the directory, or fix the path in the manifest"))]
    MissingBind { service: String, path: PathBuf },
}

/// An image as apply would realise it.
#[derive(Debug, Clone)]
pub struct DesiredImage {
    pub node: NodeId,
    /// The tag services run: `<project>-<image>:<hash12>` for builds, the reference otherwise.
    pub tag: String,
    pub build: Option<ImageBuild>,
    /// Dockerfile path, build args and target, and every context file that is sent.
    pub key: Key,
    pub fingerprint: String,
}

/// How one build-context entry enters the image key: what the image would contain — the
/// content and executable bit of a file, a link's target, that a directory exists — not
/// mtimes or owners, which change on every checkout.
fn context_inputs(
    image: &str,
    context: &Path,
    dockerfile: &Path,
    exclude: &[PathBuf],
    stat: &mut StatCache,
) -> Result<BTreeMap<String, String>, DesiredError> {
    let entries =
        context_entries(context, dockerfile, exclude).map_err(|source| DesiredError::Context {
            image: image.to_string(),
            source,
        })?;
    let mut out = BTreeMap::new();
    let mut files = Vec::new();
    for e in entries {
        let name = e.rel.to_string_lossy().replace('\\', "/");
        let t = e.metadata.file_type();
        if t.is_symlink() {
            let target = std::fs::read_link(&e.path)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            out.insert(name, format!("link {target}"));
        } else if t.is_dir() {
            out.insert(name, "dir".to_string());
        } else {
            files.push(InputFile {
                name,
                path: e.path,
                metadata: e.metadata,
            });
        }
    }
    let hashes = stat
        .hash_files(&files)
        .map_err(|source| DesiredError::HashContext {
            image: image.to_string(),
            path: context.to_path_buf(),
            source,
        })?;
    for f in &files {
        use std::os::unix::fs::PermissionsExt;
        let exec = f.metadata.permissions().mode() & 0o111 != 0;
        if let Some(h) = hashes.get(&f.name) {
            let value = if exec { format!("{h} x") } else { h.clone() };
            out.insert(f.name.clone(), value);
        }
    }
    Ok(out)
}

/// Computes an image's key, tag and build from the current state of its context. `stat`
/// keeps an unchanged context from being read again.
pub fn image(m: &Manifest, name: &str, stat: &mut StatCache) -> Result<DesiredImage, DesiredError> {
    let node = NodeId::new(Kind::Image, name);
    let img = &m.images[name];
    match &img.source {
        ImageSource::Reference(r) => {
            let key = Key::new(
                "image",
                name,
                Spec {
                    extra: json!({ "reference": r }),
                    ..Spec::default()
                },
            );
            Ok(DesiredImage {
                node,
                tag: r.clone(),
                build: None,
                fingerprint: key.fingerprint(),
                key,
            })
        }
        ImageSource::Build {
            context,
            dockerfile,
            args,
            target,
        } => {
            let rel = dockerfile
                .strip_prefix(context)
                .unwrap_or(Path::new("Dockerfile"))
                .to_path_buf();
            let exclude = m.written_dirs();
            let mut key = Key::new(
                "image",
                name,
                Spec {
                    extra: json!({
                        "dockerfile": rel,
                        "args": args,
                        "target": target,
                    }),
                    ..Spec::default()
                },
            );
            key.inputs = context_inputs(name, context, &rel, &exclude, stat)?;
            let fingerprint = key.fingerprint();
            let tag = format!(
                "{}:{}",
                names::image_repo(&m.project.name, name),
                &fingerprint[..12]
            );
            let build = ImageBuild {
                tag: tag.clone(),
                context_dir: context.clone(),
                dockerfile: rel,
                build_args: args.clone(),
                target: target.clone(),
                labels: names::labels(&m.project.name, &node.to_string(), Some(&fingerprint)),
                exclude,
            };
            Ok(DesiredImage {
                node,
                tag,
                build: Some(build),
                key,
                fingerprint,
            })
        }
    }
}

/// The image tag a service or task runs, given the tags the images resolved to.
pub fn image_tag(r: &ImageRef, tags: &BTreeMap<String, String>) -> Option<String> {
    match r {
        ImageRef::Declared(n) => tags.get(n).cloned(),
        ImageRef::External(reference) => Some(reference.clone()),
    }
}

/// A secret the container reads from a file: written on the host, in a directory only the
/// owner of the state directory can enter, and bind-mounted read-only at its path.
#[derive(Clone)]
pub struct SecretFileOnHost {
    pub host: PathBuf,
    pub value: String,
    pub mode: u32,
    pub owner: Option<(u32, u32)>,
}

impl std::fmt::Debug for SecretFileOnHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretFileOnHost")
            .field("host", &self.host)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Where a service's secret files live on the host: `<state>/secrets/<service>`, 0700.
pub fn secret_dir(m: &Manifest, service: &str) -> PathBuf {
    m.project.state_dir.join("secrets").join(service)
}

/// A container as apply would create it.
#[derive(Debug, Clone)]
pub struct DesiredContainer {
    pub node: NodeId,
    /// With secret values: for the backend only.
    pub spec: ContainerSpec,
    /// Without secret values: for state records and people.
    pub public: Value,
    /// Everything the container's identity depends on; its fingerprint labels the container.
    pub key: Key,
    pub fingerprint: String,
    /// Whether services without a `network` need the project's default network.
    pub uses_default_network: bool,
    /// The secret files to write before the container is created.
    pub secret_files: Vec<SecretFileOnHost>,
}

/// Builds a service's container spec. `image_tag` is the tag its image resolved to and
/// `image_fingerprint` that image's fingerprint when the manifest builds it.
pub fn container(
    m: &Manifest,
    svc: &Service,
    image_tag: &str,
    image_fingerprint: Option<&str>,
    salt: &Salt,
) -> Result<DesiredContainer, DesiredError> {
    let project = &m.project.name;
    let node = NodeId::new(Kind::Service, &svc.name);
    let mut env = svc.env.clone();
    let mut secrets = BTreeMap::new();
    let mut public_env: BTreeMap<String, String> = svc.env.clone();
    for se in &svc.secret_env {
        let value = crate::secrets::resolve(m, &se.secret)?;
        let hash = salt.keyed_hash(value.as_bytes());
        public_env.insert(
            se.var.clone(),
            format!("<secret {}:{}>", se.secret, &hash[..12]),
        );
        secrets.insert(se.var.clone(), format!("{}:{hash}", se.secret));
        env.insert(se.var.clone(), value);
    }
    let mut mounts = Vec::new();
    for mnt in &svc.mounts {
        let source = match &mnt.source {
            MountSource::Volume(v) => backend::MountSource::Volume(names::volume(project, v)),
            MountSource::Bind(p) => {
                if !p.exists() {
                    return Err(DesiredError::MissingBind {
                        service: svc.name.clone(),
                        path: p.clone(),
                    });
                }
                backend::MountSource::Bind(p.clone())
            }
        };
        mounts.push(backend::MountSpec {
            source,
            target: mnt.target.clone(),
            read_only: mnt.read_only,
        });
    }
    // The file's name carries a keyed hash of the value, so a changed secret is a changed
    // mount — a new container — and the value itself is in no spec, label or key.
    let mut secret_files = Vec::new();
    let mut file_keys = Vec::new();
    for sf in &svc.secret_files {
        let value = crate::secrets::resolve(m, &sf.secret)?;
        let hash = salt.keyed_hash(value.as_bytes());
        let host = secret_dir(m, &svc.name).join(format!("{}-{}", sf.secret, &hash[..12]));
        mounts.push(backend::MountSpec {
            source: backend::MountSource::Bind(host.clone()),
            target: sf.path.clone(),
            read_only: true,
        });
        secrets.insert(format!("file:{}", sf.path), format!("{}:{hash}", sf.secret));
        file_keys.push(json!({ "path": sf.path, "mode": sf.mode, "owner": sf.owner }));
        secret_files.push(SecretFileOnHost {
            host,
            value,
            mode: sf.mode,
            owner: sf.owner,
        });
    }
    let uses_default_network = svc.networks.is_empty();
    let networks = if uses_default_network {
        vec![backend::NetworkAttachment {
            network: names::default_network(project),
            aliases: vec![svc.name.clone()],
        }]
    } else {
        svc.networks
            .iter()
            .map(|n| {
                // The service's own name always resolves on its networks, as in Compose.
                let mut aliases = vec![svc.name.clone()];
                aliases.extend(n.aliases.iter().filter(|a| **a != svc.name).cloned());
                backend::NetworkAttachment {
                    network: names::network(project, &n.network),
                    aliases,
                }
            })
            .collect()
    };
    let ports = svc
        .ports
        .iter()
        .map(|p| backend::PortSpec {
            host_ip: p.host_ip.clone(),
            host_port: p.host,
            container_port: p.container,
            protocol: match p.protocol {
                crate::manifest::Protocol::Tcp => backend::Protocol::Tcp,
                crate::manifest::Protocol::Udp => backend::Protocol::Udp,
            },
        })
        .collect();
    let restart = match svc.restart {
        RestartPolicy::No => backend::RestartPolicy::No,
        RestartPolicy::Always => backend::RestartPolicy::Always,
        RestartPolicy::UnlessStopped => backend::RestartPolicy::UnlessStopped,
        RestartPolicy::OnFailure(n) => backend::RestartPolicy::OnFailure { max_retries: n },
    };
    // The backend runs health checks as `CMD`: the shell form becomes `/bin/sh -c`.
    let health = svc.health.as_ref().map(|h| backend::HealthCheck {
        cmd: crate::executors::ready::probe_argv(&h.test).unwrap_or_default(),
        interval: h.interval.0,
        timeout: h.timeout.0,
        retries: h.retries,
        start_period: h.start_period.0,
    });
    let mut spec = ContainerSpec {
        name: names::container(project, &svc.name),
        image: image_tag.to_string(),
        command: svc.command.clone(),
        entrypoint: svc.entrypoint.clone(),
        env,
        ports,
        mounts,
        networks,
        restart,
        cpus: svc.resources.cpus.map(|c| c.0),
        memory_bytes: svc.resources.memory.map(|s| s.0 as i64),
        pids_limit: svc.resources.pids,
        health,
        user: svc.user.clone(),
        working_dir: svc.workdir.clone(),
        labels: BTreeMap::new(),
        hostname: svc.hostname.clone(),
    };
    let mut public = serde_json::to_value(&spec).unwrap_or(Value::Null);
    public["env"] = serde_json::to_value(&public_env).unwrap_or(Value::Null);
    public["labels"] = serde_json::to_value(&svc.labels).unwrap_or(Value::Null);
    // Only when set: every recreated service keeps the fingerprint it had before the
    // strategy existed. Going blue-green (or back) replaces the container, which moves the
    // published ports to the proxy (or back).
    if svc.update.is_blue_green() {
        public["update"] = Value::from("blue-green");
    }
    // The key: command and plain env where `why` names them, the rest of the public spec
    // field by field, secrets as keyed hashes.
    let mut extra = public.clone();
    if let Value::Object(o) = &mut extra {
        o.remove("env");
        o.remove("command");
        o.remove("name");
        if !file_keys.is_empty() {
            o.insert("secret_files".into(), Value::Array(file_keys));
        }
    }
    let mut key = Key::new(
        "service",
        &svc.name,
        Spec {
            command: svc.command.clone().unwrap_or_default(),
            env: svc.env.clone(),
            workdir: None,
            outputs: Vec::new(),
            extra,
        },
    );
    key.secrets = secrets;
    if let (ImageRef::Declared(img), Some(fp)) = (&svc.image, image_fingerprint) {
        key.dependencies
            .insert(format!("image.{img}"), fp.to_string());
    }
    let fingerprint = key.fingerprint();
    let mut labels = svc.labels.clone();
    labels.extend(names::labels(
        project,
        &node.to_string(),
        Some(&fingerprint),
    ));
    spec.labels = labels;
    Ok(DesiredContainer {
        node,
        spec,
        public,
        key,
        fingerprint,
        uses_default_network,
        secret_files,
    })
}

/// Writes a container's secret files: the directory 0700, each file by rename with its mode
/// and owner, and the files of earlier values removed.
pub fn write_secret_files(dir: &Path, files: &[SecretFileOnHost]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if files.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for f in files {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, f.value.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(f.mode))?;
        if let Some((uid, gid)) = f.owner {
            // Only root may give a file away; elsewhere the file stays the user's own.
            match std::os::unix::fs::chown(tmp.path(), Some(uid), Some(gid)) {
                Err(e) if e.kind() != std::io::ErrorKind::PermissionDenied => return Err(e),
                _ => {}
            }
        }
        tmp.persist(&f.host).map_err(|e| e.error)?;
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !files.iter().any(|f| f.host == path) {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(())
}

/// A volume's or network's key: its identity is its name, so only its options are in it.
pub fn named_key(m: &Manifest, id: &NodeId) -> Key {
    let extra = match id.kind {
        Kind::Volume => json!({ "driver": m.volumes.get(&id.name).and_then(|v| v.driver.clone()) }),
        Kind::Network => {
            let n = m.networks.get(&id.name);
            json!({
                "driver": n.and_then(|n| n.driver.clone()),
                "internal": n.is_some_and(|n| n.internal),
            })
        }
        _ => Value::Null,
    };
    Key::new(
        id.kind.as_str(),
        &id.name,
        Spec {
            extra,
            ..Spec::default()
        },
    )
}

/// A backup's key: what it reads, how it quiesces, where its copies go and what it keeps.
/// The snapshot's own id comes from the content, so an unchanged source makes no new one.
pub fn backup_key(b: &Backup) -> Key {
    Key::new(
        "backup",
        &b.name,
        Spec {
            extra: json!({
                "source": b.source,
                "quiesce": b.quiesce,
                "level": b.level,
                "copies": b.copies,
                "keep": b.keep,
            }),
            ..Spec::default()
        },
    )
}

/// A sync rule's key: both sides and every option of the pass.
pub fn sync_key(s: &Sync) -> Key {
    Key::new(
        "sync",
        &s.name,
        Spec {
            extra: json!({
                "host": s.host,
                "target": s.target,
                "mode": s.mode,
                "ignore": s.ignore,
                "rewrites": s.rewrites,
                "conflict": s.conflict,
                "owner": s.owner,
                "file_mode": s.file_mode,
            }),
            ..Spec::default()
        },
    )
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
