//! `test` nodes: exactly one check (run, exec, http, tcp), the services it needs, tags,
//! inputs and its timeout.

use super::*;

pub(super) fn resolve_test(r: &mut Resolver, t: &raw::Test) -> Option<Test> {
    let name = t.name.to_string();
    let role = format!("test `{name}`");
    let mut needs = Vec::new();
    for group in &t.needs {
        for n in &group.values {
            if r.check_ref(Kind::Service, n, &role) {
                needs.push(n.to_string());
            }
        }
    }
    let depends_on = r.depends_on(&format!("test `{}`", &*t.name), &t.depends_on);
    let forms = [
        !t.run.is_empty(),
        t.exec.is_some(),
        t.http.is_some(),
        t.tcp.is_some(),
    ];
    let count = forms.iter().filter(|b| **b).count();
    if count != 1 {
        let mut d = Diag::error(if count == 0 {
            format!("test `{name}` has no check")
        } else {
            format!("test `{name}` has more than one check")
        })
        .help("a test has exactly one of: run \"command\", exec \"service\" \"cmd\"…, http \"url\", tcp \"host:port\"");
        if count == 0 {
            d = d.label(at(t.name.span()), "declared here");
        } else {
            // Point at every check, so the user sees which ones compete.
            let checks = t
                .run
                .iter()
                .map(|c| (at(c.span()), "`run` check"))
                .chain(t.exec.iter().map(|c| (at(&c.span), "`exec` check")))
                .chain(t.http.iter().map(|c| (at(&c.span), "`http` check")))
                .chain(t.tcp.iter().map(|c| (at(&c.span), "`tcp` check")));
            for (span, text) in checks {
                d = d.label(span, text);
            }
        }
        r.err(d);
        return None;
    }
    if t.image.is_some() && t.run.is_empty() {
        r.err(
            Diag::error("`image` on a test applies only to `run` commands").label(
                at(t.image.as_ref().map(|i| i.span()).unwrap_or(t.name.span())),
                "image without run",
            ),
        );
    }
    let check = if !t.run.is_empty() {
        let image = t.image.as_ref().and_then(|i| r.image_ref(i, &role));
        TestCheck::Command {
            run: t.run.iter().map(|l| l.to_string()).collect(),
            image,
        }
    } else if let Some(e) = &t.exec {
        r.check_ref(Kind::Service, &e.service, &role);
        if e.command.is_empty() {
            r.err(
                Diag::error("`exec` needs a command after the service name")
                    .label(at(&e.span), "no command")
                    .help("exec \"omega\" \"wget\" \"-qO-\" \"http://beta:3001/health\""),
            );
        }
        TestCheck::Exec {
            service: e.service.to_string(),
            command: e.command.clone(),
        }
    } else if let Some(h) = &t.http {
        if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
            r.err(
                Diag::error(format!("invalid URL `{}`", &*h.url))
                    .label(at(h.url.span()), "expected http:// or https://"),
            );
        }
        if let Some(s) = &h.status {
            if !(100..=599).contains(&**s) {
                r.err(
                    Diag::error(format!("invalid HTTP status {}", **s))
                        .label(at(s.span()), "expected 100-599"),
                );
            }
        }
        if let (Some(insecure), Some(_)) = (&h.insecure, &h.ca_file) {
            if **insecure {
                r.err(
                    Diag::error(
                        "`insecure=true` accepts any certificate, so `ca-file` would never be used",
                    )
                    .label(at(insecure.span()), "drop one of the two"),
                );
            }
        }
        if h.equals.is_some() && h.json_path.is_none() {
            r.err(
                Diag::error("`equals` needs `json-path`")
                    .label(at(&h.span), "equals without json-path")
                    .help("json-path=\"status.state\" equals=\"running\""),
            );
        }
        TestCheck::Http(HttpProbe {
            url: h.url.to_string(),
            method: h.method.unwrap_or(HttpMethod::Get),
            status: h.status.as_ref().map(|s| **s).unwrap_or(200),
            contains: h.contains.clone(),
            json_path: h.json_path.clone(),
            equals: h.equals.as_ref().map(|e| e.text.clone()),
            body: h.body.clone(),
            retries: h.retries.unwrap_or(0),
            delay: h
                .delay
                .unwrap_or(Duration(std::time::Duration::from_secs(1))),
            ca_file: h.ca_file.as_deref().map(|p| r.path(p)),
            insecure: h.insecure.as_ref().is_some_and(|i| **i),
        })
    } else {
        let tcp = t.tcp.as_ref()?;
        let valid = tcp.address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            r.err(
                Diag::error(format!("invalid TCP address `{}`", &*tcp.address))
                    .label(at(tcp.address.span()), "expected HOST:PORT")
                    .help("tcp \"127.0.0.1:5432\""),
            );
        }
        TestCheck::Tcp {
            address: tcp.address.to_string(),
            retries: tcp.retries.unwrap_or(0),
            delay: tcp
                .delay
                .unwrap_or(Duration(std::time::Duration::from_secs(1))),
        }
    };
    let secret_files = secret_files(r, &t.secret_file, None, &role);
    let in_image = matches!(&check, TestCheck::Command { image: Some(_), .. });
    if let (Some(first), false) = (t.secret_file.first(), in_image) {
        r.err(
            Diag::error(format!("test `{name}` has a `secret-file` but does not run in an image"))
                .label(at(&first.span), "needs a container to be mounted into")
                .help("secret files go to `run` checks with `image \"…\"`; a service's own secrets are its `secret-file` entries"),
        );
    }
    Some(Test {
        name,
        span: span(&t.name),
        description: t.description.clone(),
        tags: t.tags.clone().unwrap_or_default(),
        needs,
        depends_on,
        check,
        inputs: flatten_args(&t.inputs),
        env: merge_props(&t.env),
        secret_files,
        timeout: t.timeout.unwrap_or(Duration(DEFAULT_TEST_TIMEOUT)),
    })
}
