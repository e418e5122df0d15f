//! `service` nodes: image, command, env and secrets, ports, mounts, networks, health,
//! resources and the timeouts dependents wait under.

use super::*;

pub(super) fn resolve_service(
    r: &mut Resolver,
    s: &raw::Service,
    ports: &mut Vec<(String, PortSpec, SourceSpan)>,
) -> Option<Service> {
    let name = s.name.to_string();
    let role = format!("service `{name}`");
    let image = match &s.image {
        Some(i) => r.image_ref(i, &role),
        None => {
            r.err(
                Diag::error(format!("service `{name}` has no image"))
                    .label(at(s.name.span()), "no `image`")
                    .help("add `image \"name\"` naming a declared image, or an image reference like \"busybox:1.36\""),
            );
            None
        }
    };
    let secret_env = secret_envs(r, &s.secret_env);
    let secret_files = secret_files(r, &s.secret_file, s.user.as_deref(), &role);

    let mut port_specs = Vec::new();
    for p in &s.ports {
        let parsed = if p.spec.is_string {
            p.spec.text.parse::<PortSpec>()
        } else {
            p.spec.text.parse::<PortSpec>().map_err(|_| {
                format!(
                    "invalid port `{}`: expected a container port number 1-65535",
                    p.spec.text
                )
            })
        };
        match parsed {
            Ok(mut spec) => {
                if let Some(h) = &p.host {
                    if spec.host.is_some() {
                        r.err(
                            Diag::error("the host port is given twice")
                                .label(at(h.span()), "host= here")
                                .label(at(p.spec.span()), "and in the port spec")
                                .help("write either `port 80 host=8080` or `port \"8080:80\"`"),
                        );
                    } else if **h == 0 {
                        r.err(
                            Diag::error("host port 0 is not allowed")
                                .label(at(h.span()), "invalid port"),
                        );
                    }
                    spec.host = Some(**h);
                }
                if let Some(proto) = p.protocol {
                    spec.protocol = proto;
                }
                if let Some(ip) = &p.ip {
                    if ip.parse::<std::net::IpAddr>().is_err() {
                        r.err(
                            Diag::error(format!("invalid ip `{ip}`"))
                                .label(at(&p.span), "not an IP address")
                                .help("write an address such as \"127.0.0.1\" or \"0.0.0.0\""),
                        );
                    }
                    spec.host_ip = Some(ip.clone());
                }
                ports.push((name.clone(), spec.clone(), at(&p.span)));
                port_specs.push(spec);
            }
            Err(e) => r.err(Diag::error(e).label(at(p.spec.span()), "invalid port spec")),
        }
    }

    let mut mounts = Vec::new();
    for mnt in &s.mounts {
        if r.check_ref(Kind::Volume, &mnt.source, &role) {
            mounts.push(Mount {
                source: MountSource::Volume(mnt.source.to_string()),
                target: container_path(r, &mnt.target),
                read_only: mnt.read_only,
            });
        }
    }
    for b in &s.binds {
        mounts.push(Mount {
            source: MountSource::Bind(r.path(&b.source)),
            target: container_path(r, &b.target),
            read_only: b.read_only,
        });
    }
    let mut networks: Vec<NetworkAttachment> = Vec::new();
    for n in &s.networks {
        if r.check_ref(Kind::Network, &n.name, &role) {
            match networks.iter_mut().find(|a| a.network == *n.name) {
                Some(existing) => existing.aliases.extend(n.alias.clone()),
                None => networks.push(NetworkAttachment {
                    network: n.name.to_string(),
                    aliases: n.alias.iter().cloned().collect(),
                }),
            }
        }
    }

    let resources = match &s.resources {
        Some(res) => {
            let cpus = res
                .cpus
                .as_ref()
                .and_then(|c| match c.text.parse::<Cpus>() {
                    Ok(c) => Some(c),
                    Err(e) => {
                        r.err(Diag::error(e).label(at(c.span()), "invalid cpus"));
                        None
                    }
                });
            if let Some(p) = res.pids {
                if p < 1 {
                    r.err(
                        Diag::error(format!(
                            "invalid pids limit {p}: expected a positive number"
                        ))
                        .label(at(&res.span), "invalid pids"),
                    );
                }
            }
            Resources {
                cpus,
                memory: res.memory,
                pids: res.pids,
            }
        }
        None => Resources::default(),
    };

    let health = s.health.as_ref().and_then(|h| {
        let test = match (&h.cmd, &h.shell) {
            (Some(cmd), None) if !cmd.is_empty() => Some([vec!["CMD".to_string()], cmd.clone()].concat()),
            (None, Some(sh)) => Some(vec!["CMD-SHELL".to_string(), sh.clone()]),
            (Some(_), Some(_)) => {
                r.err(
                    Diag::error("a health check has either `cmd` or `shell`, not both")
                        .label(at(&h.span), "both given"),
                );
                None
            }
            _ => {
                r.err(
                    Diag::error(format!("the health check of service `{name}` has no command"))
                        .label(at(&h.span), "no `cmd` or `shell`")
                        .help("add `cmd \"wget\" \"-qO-\" \"http://127.0.0.1:3000/health\"` or `shell \"…\"`"),
                );
                None
            }
        }?;
        Some(HealthCheck {
            test,
            interval: h.interval.unwrap_or(Duration(std::time::Duration::from_secs(30))),
            timeout: h.timeout.unwrap_or(Duration(std::time::Duration::from_secs(30))),
            retries: h.retries.unwrap_or(3),
            start_period: h.start_period.unwrap_or(Duration(std::time::Duration::ZERO)),
        })
    });

    let depends_on = r.depends_on(&format!("service `{name}`"), &s.depends_on);
    let update = update(r, s, health.is_some(), &port_specs);

    Some(Service {
        name: name.clone(),
        span: span(&s.name),
        description: s.description.clone(),
        image: image?,
        command: s.command.clone(),
        entrypoint: s.entrypoint.clone(),
        env: merge_props(&s.env),
        secret_env,
        secret_files,
        ports: port_specs,
        mounts,
        networks,
        restart: s.restart.as_ref().map(|p| p.0).unwrap_or_default(),
        resources,
        health,
        depends_on,
        user: s.user.clone(),
        workdir: s.workdir.clone(),
        hostname: s.hostname.clone(),
        ready_timeout: s.ready_timeout.unwrap_or(Duration(DEFAULT_READY_TIMEOUT)),
        stop_timeout: s.stop_timeout.unwrap_or(Duration(DEFAULT_STOP_TIMEOUT)),
        labels: merge_props(&s.labels),
        update: update?,
        profiles: s.profile.clone().unwrap_or_default(),
        restart_limit: restart_limit(r, s),
    })
}

/// `update "recreate"|"blue-green"`, with `drain-timeout` and `keep-previous`. A blue-green
/// service needs a health check (the switch waits for it) and TCP ports only (its proxy
/// forwards TCP).
fn update(
    r: &mut Resolver,
    s: &raw::Service,
    has_health: bool,
    ports: &[PortSpec],
) -> Option<Update> {
    let name = &*s.name;
    let blue_green = match s.update.as_ref().map(|u| (u.as_str(), u)) {
        None | Some(("recreate", _)) => false,
        Some(("blue-green", _)) => true,
        Some((other, u)) => {
            r.err(
                Diag::error(format!("unknown update strategy `{other}`"))
                    .label(at(u.span()), "not a strategy")
                    .help("write `update \"recreate\"` (the default) or `update \"blue-green\"`"),
            );
            return None;
        }
    };
    if !blue_green {
        if s.drain_timeout.is_some() || s.keep_previous.is_some() {
            r.err(
                Diag::error(format!(
                    "service `{name}`: `drain-timeout` and `keep-previous` apply to blue-green updates only"
                ))
                .label(at(s.name.span()), "this service is recreated")
                .help("add `update \"blue-green\"`, or remove them"),
            );
        }
        return Some(Update::Recreate);
    }
    let u = s.update.as_ref().expect("blue-green was written");
    let mut ok = true;
    if !has_health {
        r.err(
            Diag::error(format!("blue-green service `{name}` has no health check"))
                .label(at(u.span()), "the switch waits until the new container is healthy")
                .help("add a `health` block, e.g. `health { cmd \"wget\" \"-q\" \"-O-\" \"http://127.0.0.1:8080/\" }`"),
        );
        ok = false;
    }
    if let Some(p) = ports.iter().find(|p| p.protocol == Protocol::Udp) {
        r.err(
            Diag::error(format!(
                "blue-green service `{name}` publishes UDP port {}",
                p.container
            ))
            .label(at(u.span()), "its published ports are held by a TCP proxy")
            .help("publish TCP ports only, or use `update \"recreate\"`"),
        );
        ok = false;
    }
    ok.then(|| Update::BlueGreen {
        drain_timeout: s
            .drain_timeout
            .unwrap_or(Duration(std::time::Duration::from_secs(30))),
        keep_previous: s.keep_previous.unwrap_or(false),
    })
}

/// `restart-limit N within="…"`, or the default.
fn restart_limit(r: &mut Resolver, s: &raw::Service) -> RestartLimit {
    let Some(l) = &s.restart_limit else {
        return RestartLimit::default();
    };
    if *l.count == 0 {
        r.err(
            Diag::error("a restart limit of 0 would never restart")
                .label(at(l.count.span()), "0")
                .help("the supervisor leaves services without a health check alone; give a limit of 1 or more"),
        );
    }
    RestartLimit {
        count: (*l.count).max(1),
        within: l.within.unwrap_or(RestartLimit::default().within),
    }
}
