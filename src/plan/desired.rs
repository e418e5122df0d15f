//! What the manifest wants Docker to hold: image tags, volume, network and container specs,
//! each with a fingerprint. Secret values appear only in the container spec handed to the
//! backend; the public spec (for plans, state and fingerprints) carries keyed hashes instead.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::backend::names;
use crate::backend::{self, ContainerSpec, ImageBuild};
use crate::fingerprint::salt::Salt;
use crate::manifest::{
    ImageRef, ImageSource, Kind, Manifest, MountSource, NodeId, RestartPolicy, Service,
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
    #[error("bind mount source {} of service `{service}` does not exist", path.display())]
    #[diagnostic(help("create the directory, or fix the path in the manifest"))]
    MissingBind {
        service: String,
        path: std::path::PathBuf,
    },
}

/// An image as apply would realise it.
#[derive(Debug, Clone)]
pub struct DesiredImage {
    pub node: NodeId,
    /// The tag services run: `<project>-<image>:<hash12>` for builds, the reference otherwise.
    pub tag: String,
    pub build: Option<ImageBuild>,
    pub fingerprint: String,
}

/// Hashes a build context tar by what the image would contain: paths, kinds, executable bits,
/// link targets and contents — not mtimes or owners, which change on every checkout.
pub fn context_hash(tar_bytes: &[u8]) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut archive = tar::Archive::new(tar_bytes);
    let mut buf = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header = entry.header().clone();
        let path = entry.path()?.to_string_lossy().into_owned();
        h.update(path.as_bytes());
        h.update([0, header.entry_type().as_byte()]);
        h.update([(header.mode().unwrap_or(0) & 0o111 != 0) as u8]);
        if let Ok(Some(link)) = entry.link_name() {
            h.update(link.to_string_lossy().as_bytes());
        }
        buf.clear();
        entry.read_to_end(&mut buf)?;
        h.update((buf.len() as u64).to_le_bytes());
        h.update(&buf);
    }
    Ok(hex::encode(h.finalize()))
}

/// Computes an image's tag and build from the current state of its context.
pub fn image(m: &Manifest, name: &str) -> Result<DesiredImage, DesiredError> {
    let node = NodeId::new(Kind::Image, name);
    let img = &m.images[name];
    match &img.source {
        ImageSource::Reference(r) => Ok(DesiredImage {
            node,
            tag: r.clone(),
            build: None,
            fingerprint: sha256_hex(r.as_bytes()),
        }),
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
            let tar = backend::context::tar_context(context, &rel).map_err(|source| {
                DesiredError::Context {
                    image: name.to_string(),
                    source,
                }
            })?;
            let content = context_hash(&tar).map_err(|e| DesiredError::Context {
                image: name.to_string(),
                source: backend::BackendError::BuildContext {
                    path: context.clone(),
                    source: e,
                },
            })?;
            let key = json!({
                "context": content,
                "dockerfile": rel,
                "args": args,
                "target": target,
            });
            let fingerprint = sha256_hex(key.to_string().as_bytes());
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
                labels: names::labels(&m.project.name, &node.to_string(), Some(&fingerprint)),
            };
            Ok(DesiredImage {
                node,
                tag,
                build: Some(build),
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

/// A container as apply would create it.
#[derive(Debug, Clone)]
pub struct DesiredContainer {
    pub node: NodeId,
    /// With secret values: for the backend only.
    pub spec: ContainerSpec,
    /// Without secret values: for plans, state and the fingerprint.
    pub public: Value,
    pub fingerprint: String,
    /// Whether services without a `network` need the project's default network.
    pub uses_default_network: bool,
}

/// Builds a service's container spec. `image_tag` is the tag its image resolved to.
pub fn container(
    m: &Manifest,
    svc: &Service,
    image_tag: &str,
    salt: &Salt,
) -> Result<DesiredContainer, DesiredError> {
    let project = &m.project.name;
    let node = NodeId::new(Kind::Service, &svc.name);
    let mut env = svc.env.clone();
    let mut public_env: BTreeMap<String, String> = svc.env.clone();
    for se in &svc.secret_env {
        let value = crate::secrets::resolve(m, &se.secret)?;
        public_env.insert(
            se.var.clone(),
            format!(
                "<secret {}:{}>",
                se.secret,
                &salt.keyed_hash(value.as_bytes())[..12]
            ),
        );
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
        cmd: crate::apply::ready::probe_argv(&h.test).unwrap_or_default(),
        interval: h.interval.0,
        timeout: h.timeout.0,
        retries: h.retries,
        start_period: h.start_period.0,
    });
    let mut labels = svc.labels.clone();
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
    if let Value::Object(o) = &mut public {
        o.remove("labels");
        o.insert(
            "labels".into(),
            serde_json::to_value(&svc.labels).unwrap_or(Value::Null),
        );
    }
    let fingerprint = sha256_hex(public.to_string().as_bytes());
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
        fingerprint,
        uses_default_network,
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
