//! Pure translations between the backend's own types and the Docker API's, kept apart from
//! the I/O in `docker.rs` so they are tested without a daemon.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, EndpointSettings,
    HealthConfig, HealthStatusEnum, HostConfig, Mount, MountType, NetworkingConfig, PortBinding,
    PortMap, RestartPolicy as DockerRestart, RestartPolicyNameEnum,
};
use chrono::{DateTime, Utc};

use super::error::DaemonError;
use super::info::{ContainerInfo, ContainerState, HealthState, PublishedPort};
use super::spec::{ContainerSpec, MountSource, Protocol, RestartPolicy};

/// How many health-check outputs an error or `ContainerInfo` carries.
const HEALTH_OUTPUTS_KEPT: usize = 3;

/// The create request for `spec`. Only the first network is joined here: the API accepts a
/// single endpoint at creation, the others are connected before start.
pub(crate) fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let mut exposed = Vec::new();
    let mut bindings: PortMap = HashMap::new();
    for port in &spec.ports {
        let key = format!("{}/{}", port.container_port, port.protocol.as_str());
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: port.host_ip.clone(),
                // An empty host port asks the daemon for an ephemeral one.
                host_port: Some(port.host_port.map(|p| p.to_string()).unwrap_or_default()),
            });
    }

    let mounts = spec
        .mounts
        .iter()
        .map(|m| {
            let (typ, source) = match &m.source {
                MountSource::Volume(name) => (MountType::VOLUME, name.clone()),
                MountSource::Bind(path) => (MountType::BIND, path.display().to_string()),
            };
            Mount {
                target: Some(m.target.clone()),
                source: Some(source),
                typ: Some(typ),
                read_only: Some(m.read_only),
                ..Default::default()
            }
        })
        .collect();

    let host_config = HostConfig {
        port_bindings: Some(bindings),
        mounts: Some(mounts),
        restart_policy: Some(restart_policy(spec.restart)),
        nano_cpus: spec.cpus.map(nano_cpus),
        memory: spec.memory_bytes,
        pids_limit: spec.pids_limit,
        ..Default::default()
    };

    let networking_config = spec.networks.first().map(|first| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            first.network.clone(),
            endpoint(&first.aliases),
        )])),
    });

    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        exposed_ports: Some(exposed),
        labels: Some(to_hash(&spec.labels)),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        hostname: spec.hostname.clone(),
        healthcheck: spec.health.as_ref().map(|h| HealthConfig {
            test: Some(
                std::iter::once("CMD".to_string())
                    .chain(h.cmd.iter().cloned())
                    .collect(),
            ),
            interval: Some(nanos(h.interval)),
            timeout: Some(nanos(h.timeout)),
            retries: Some(i64::from(h.retries)),
            start_period: Some(nanos(h.start_period)),
            // API 1.41 (Docker 20.10) has no start interval; sending one would be rejected.
            start_interval: None,
        }),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

/// Endpoint settings carrying `aliases`.
pub(crate) fn endpoint(aliases: &[String]) -> EndpointSettings {
    EndpointSettings {
        aliases: (!aliases.is_empty()).then(|| aliases.to_vec()),
        ..Default::default()
    }
}

fn restart_policy(policy: RestartPolicy) -> DockerRestart {
    let (name, max) = match policy {
        RestartPolicy::No => (RestartPolicyNameEnum::NO, None),
        RestartPolicy::Always => (RestartPolicyNameEnum::ALWAYS, None),
        RestartPolicy::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        RestartPolicy::OnFailure { max_retries } => (
            RestartPolicyNameEnum::ON_FAILURE,
            max_retries.map(i64::from),
        ),
    };
    DockerRestart {
        name: Some(name),
        maximum_retry_count: max,
    }
}

/// CPUs as the daemon counts them: billionths of a CPU.
pub(crate) fn nano_cpus(cpus: f64) -> i64 {
    (cpus * 1e9).round() as i64
}

fn nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

pub(crate) fn to_hash(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(crate) fn to_btree(map: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    map.unwrap_or_default().into_iter().collect()
}

/// Our view of an inspected container.
pub(crate) fn container_info(resp: ContainerInspectResponse) -> ContainerInfo {
    let state = resp.state.unwrap_or_default();
    let health = state.health.unwrap_or_default();
    let health_state = match health.status {
        Some(HealthStatusEnum::STARTING) => HealthState::Starting,
        Some(HealthStatusEnum::HEALTHY) => HealthState::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => HealthState::Unhealthy,
        _ => HealthState::None,
    };
    let log = health.log.unwrap_or_default();
    let health_output = log
        .iter()
        .skip(log.len().saturating_sub(HEALTH_OUTPUTS_KEPT))
        .map(|r| {
            format!(
                "exit {}: {}",
                r.exit_code.unwrap_or(-1),
                r.output.as_deref().unwrap_or("").trim()
            )
        })
        .collect();
    let config = resp.config.unwrap_or_default();
    let settings = resp.network_settings.unwrap_or_default();
    let ips = settings
        .networks
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(net, e)| e.ip_address.filter(|ip| !ip.is_empty()).map(|ip| (net, ip)))
        .collect();
    let ports = settings.ports.map(published_ports).unwrap_or_default();
    ContainerInfo {
        id: resp.id.unwrap_or_default(),
        name: resp
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        state: state
            .status
            .map(state_from_status)
            .unwrap_or(ContainerState::Unknown),
        health: health_state,
        exit_code: state.exit_code,
        started_at: state.started_at.as_deref().and_then(parse_started_at),
        labels: to_btree(config.labels),
        image: config.image.unwrap_or_default(),
        image_id: resp.image.unwrap_or_default(),
        ports,
        health_output,
        env: config
            .env
            .unwrap_or_default()
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ips,
    }
}

fn state_from_status(status: ContainerStateStatusEnum) -> ContainerState {
    match status {
        ContainerStateStatusEnum::CREATED => ContainerState::Created,
        ContainerStateStatusEnum::RUNNING => ContainerState::Running,
        ContainerStateStatusEnum::PAUSED => ContainerState::Paused,
        ContainerStateStatusEnum::RESTARTING => ContainerState::Restarting,
        ContainerStateStatusEnum::REMOVING => ContainerState::Removing,
        ContainerStateStatusEnum::EXITED => ContainerState::Exited,
        ContainerStateStatusEnum::DEAD => ContainerState::Dead,
        _ => ContainerState::Unknown,
    }
}

/// Docker reports "never started" as the zero time `0001-01-01T00:00:00Z`.
fn parse_started_at(text: &str) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    (t.timestamp() > 0).then_some(t)
}

fn published_ports(map: PortMap) -> Vec<PublishedPort> {
    let mut out = Vec::new();
    for (key, bindings) in map {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(container_port) = port.parse() else {
            continue;
        };
        let protocol = if proto == "udp" {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        for b in bindings.unwrap_or_default() {
            let Some(host_port) = b.host_port.as_deref().and_then(|p| p.parse().ok()) else {
                continue;
            };
            out.push(PublishedPort {
                container_port,
                protocol,
                host_ip: b.host_ip.unwrap_or_default(),
                host_port,
            });
        }
    }
    out.sort_by(|a, b| {
        (a.container_port, a.host_port, &a.host_ip).cmp(&(
            b.container_port,
            b.host_port,
            &b.host_ip,
        ))
    });
    out
}

/// The daemon's answer, without client types.
pub(crate) fn daemon_error(err: bollard::errors::Error) -> DaemonError {
    match err {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => DaemonError::api(status_code, message),
        other => DaemonError::transport(other.to_string()),
    }
}

/// The host address and port named by a daemon error saying a published port is taken.
///
/// Docker 20.10 says either `Bind for 0.0.0.0:3000 failed: port is already allocated` (another
/// container holds it) or `listen tcp4 0.0.0.0:3000: bind: address already in use` (a host
/// process holds it).
pub(crate) fn port_in_use(message: &str) -> Option<String> {
    if let Some(rest) = message.split("Bind for ").nth(1) {
        if message.contains("port is already allocated") {
            return rest.split_whitespace().next().map(str::to_string);
        }
    }
    if message.contains("address already in use") {
        let before = message.split(": bind: address already in use").next()?;
        return before.split_whitespace().last().map(str::to_string);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::spec::{HealthCheck, MountSpec, NetworkAttachment, PortSpec};
    use std::time::Duration;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "web".into(),
            image: "img:1".into(),
            command: Some(vec!["httpd".into(), "-f".into()]),
            env: BTreeMap::from([("B".into(), "2".into()), ("A".into(), "1".into())]),
            ports: vec![PortSpec {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(8080),
                container_port: 80,
                protocol: Protocol::Tcp,
            }],
            mounts: vec![MountSpec {
                source: MountSource::Volume("data".into()),
                target: "/data".into(),
                read_only: true,
            }],
            networks: vec![
                NetworkAttachment {
                    network: "front".into(),
                    aliases: vec!["www".into()],
                },
                NetworkAttachment {
                    network: "back".into(),
                    aliases: vec![],
                },
            ],
            restart: RestartPolicy::OnFailure {
                max_retries: Some(4),
            },
            cpus: Some(1.5),
            health: Some(HealthCheck {
                cmd: vec!["wget".into(), "-q".into()],
                interval: Duration::from_millis(500),
                ..HealthCheck::default()
            }),
            ..ContainerSpec::default()
        }
    }

    #[test]
    fn create_body_translates_every_declared_field() {
        let body = create_body(&spec());
        assert_eq!(body.env, Some(vec!["A=1".into(), "B=2".into()]));
        assert_eq!(body.exposed_ports, Some(vec!["80/tcp".into()]));
        let host = body.host_config.unwrap();
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        let binding = &host.port_bindings.unwrap()["80/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_port.as_deref(), Some("8080"));
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        let restart = host.restart_policy.unwrap();
        assert_eq!(restart.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(restart.maximum_retry_count, Some(4));
        let mount = &host.mounts.unwrap()[0];
        assert_eq!(mount.typ, Some(MountType::VOLUME));
        assert_eq!(mount.read_only, Some(true));
        let health = body.healthcheck.unwrap();
        assert_eq!(
            health.test,
            Some(vec!["CMD".into(), "wget".into(), "-q".into()])
        );
        assert_eq!(health.interval, Some(500_000_000));
        assert_eq!(health.start_interval, None);
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(endpoints.len(), 1, "only the first network at creation");
        assert_eq!(endpoints["front"].aliases, Some(vec!["www".into()]));
    }

    #[test]
    fn port_in_use_is_recognised_in_both_daemon_wordings() {
        let allocated = "driver failed programming external connectivity on endpoint x \
            (abc): Bind for 0.0.0.0:3000 failed: port is already allocated";
        assert_eq!(port_in_use(allocated).as_deref(), Some("0.0.0.0:3000"));
        let host = "driver failed programming external connectivity on endpoint x (abc): \
            Error starting userland proxy: listen tcp4 0.0.0.0:3001: bind: address already in use";
        assert_eq!(port_in_use(host).as_deref(), Some("0.0.0.0:3001"));
        assert_eq!(port_in_use("no such image"), None);
    }

    #[test]
    fn never_started_is_none() {
        assert_eq!(parse_started_at("0001-01-01T00:00:00Z"), None);
        assert!(parse_started_at("2024-05-01T10:00:00.123456789Z").is_some());
    }
}
