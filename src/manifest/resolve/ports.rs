//! Checks across services: two services may not publish one host port.

use super::*;

/// Two services may not publish the same host port (same protocol, overlapping address).
pub(super) fn check_port_clashes(r: &mut Resolver, ports: &[(String, PortSpec, SourceSpan)]) {
    /// Who published a host port first: service, spec, place.
    type Published<'a> = (&'a String, &'a PortSpec, SourceSpan);
    let mut seen: HashMap<(u16, Protocol), Vec<Published>> = HashMap::new();
    for (svc, spec, s) in ports {
        let Some(host) = spec.host else { continue };
        let entry = seen.entry((host, spec.protocol)).or_default();
        let overlap = |a: &Option<String>, b: &Option<String>| {
            let wild =
                |x: &Option<String>| x.as_deref().is_none_or(|ip| ip == "0.0.0.0" || ip == "::");
            wild(a) || wild(b) || a == b
        };
        if let Some((first_svc, _, first_at)) = entry
            .iter()
            .find(|(_, p, _)| overlap(&p.host_ip, &spec.host_ip))
        {
            let msg = if *first_svc == svc {
                format!(
                    "service `{svc}` publishes host port {host}/{} twice",
                    spec.protocol
                )
            } else {
                format!(
                    "services `{first_svc}` and `{svc}` both publish host port {host}/{}",
                    spec.protocol
                )
            };
            r.err(
                Diag::error(msg)
                    .label(*s, "published again here")
                    .label(*first_at, "first published here")
                    .help("give one of them another host port"),
            );
        }
        entry.push((svc, spec, *s));
    }
}
