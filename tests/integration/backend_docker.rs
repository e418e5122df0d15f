//! The Docker backend against a real engine. Every test has its own project (and labels),
//! cleaned up by the guard even when the test fails.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sanctuary::backend::docker::DockerBackend;
use sanctuary::backend::{
    Backend, BackendError, ContainerSpec, ContainerState, Ensured, HealthCheck, HealthState,
    ImageBuild, LabelFilter, LogStream, MountSource, MountSpec, NetworkAttachment, PortSpec,
    Protocol, RestartPolicy,
};

use crate::docker_support::{
    docker_inspect, docker_or_skip, test_image, write_busybox_context, TestProject, PROJECT_LABEL,
};

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

fn sh(script: &str) -> Option<Vec<String>> {
    Some(vec!["sh".into(), "-c".into(), script.into()])
}

/// A container of the project running `script` in the busybox image.
fn base_spec(project: &TestProject, name: &str, script: &str) -> ContainerSpec {
    ContainerSpec {
        name: project.object(name),
        image: test_image(),
        command: sh(script),
        labels: project.labels(),
        ..ContainerSpec::default()
    }
}

fn health(cmd: &[&str], retries: u32) -> Option<HealthCheck> {
    Some(HealthCheck {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        interval: Duration::from_millis(250),
        timeout: Duration::from_secs(2),
        retries,
        start_period: Duration::ZERO,
    })
}

/// A tar archive holding one file.
fn tar_with(name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, name, content).unwrap();
    builder.into_inner().unwrap()
}

/// `GET path` over plain HTTP/1.0; the whole response.
fn http_get(port: u16, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test]
async fn unreachable_daemons_are_reported_quickly() {
    for host in [
        "tcp://127.0.0.1:1",
        "unix:///nonexistent/sanctuary-docker.sock",
    ] {
        let started = Instant::now();
        let err = DockerBackend::connect_to(host).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{host} took too long"
        );
        match &err {
            BackendError::Unreachable { host: h, hint, .. } => {
                assert_eq!(h, host);
                assert!(hint.contains("DOCKER_HOST"), "{hint}");
            }
            other => panic!("{host}: expected Unreachable, got {other}"),
        }
        assert!(err.is_infrastructure());
    }
}

#[tokio::test]
async fn builds_an_image_with_labels_dockerignore_and_streamed_output() {
    let Some(docker) = docker_or_skip("builds_an_image").await else {
        return;
    };
    let project = TestProject::new("build");
    let dir = tempfile::tempdir().unwrap();
    write_busybox_context(dir.path()).unwrap();
    let mut dockerfile = std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap();
    dockerfile.push_str("ARG GREETING\nCOPY . /ctx/\nRUN echo \"$GREETING\" > /greeting\n");
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.path().join("kept.txt"), "kept").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    std::fs::write(dir.path().join(".dockerignore"), "secret.txt\n").unwrap();

    let tag = format!("{}:1", project.name);
    let mut labels = project.labels();
    labels.insert("sanctuary.fingerprint".into(), "abc".into());
    let build = ImageBuild {
        tag: tag.clone(),
        context_dir: dir.path().to_path_buf(),
        dockerfile: "Dockerfile".into(),
        build_args: BTreeMap::from([("GREETING".into(), "hello".into())]),
        target: None,
        labels,
        exclude: Vec::new(),
    };
    let lines = Mutex::new(Vec::<String>::new());
    let sink = |line: &str| lines.lock().unwrap().push(line.to_string());
    let id = docker.build_image(&build, &sink).await.unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("Step 1/")),
        "{:?}",
        lines.lock().unwrap()
    );

    let info = docker.inspect_image(&tag).await.unwrap().unwrap();
    assert_eq!(info.id, id);
    assert_eq!(info.labels["sanctuary.fingerprint"], "abc");

    // The image's files show what the context held.
    let spec = ContainerSpec {
        image: tag.clone(),
        ..base_spec(&project, "probe", "cat /greeting; ls /ctx")
    };
    docker.create_container(&spec).await.unwrap();
    docker.start_container(&spec.name).await.unwrap();
    assert_eq!(docker.wait_exit(&spec.name, deadline(20)).await.unwrap(), 0);
    let out: Vec<String> = docker
        .logs(&spec.name, false, None)
        .map(|l| l.unwrap().line)
        .collect()
        .await;
    assert!(out.contains(&"hello".to_string()), "{out:?}");
    assert!(out.contains(&"kept.txt".to_string()), "{out:?}");
    assert!(!out.contains(&"secret.txt".to_string()), "{out:?}");
}

#[tokio::test]
async fn a_failing_build_step_is_reported_with_its_message() {
    let Some(docker) = docker_or_skip("a_failing_build_step").await else {
        return;
    };
    let project = TestProject::new("buildfail");
    let dir = tempfile::tempdir().unwrap();
    write_busybox_context(dir.path()).unwrap();
    let mut dockerfile = std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap();
    dockerfile.push_str("RUN [\"/bin/sh\", \"-c\", \"echo failing-now; exit 7\"]\n");
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    let build = ImageBuild {
        tag: format!("{}:bad", project.name),
        context_dir: dir.path().to_path_buf(),
        dockerfile: "Dockerfile".into(),
        labels: project.labels(),
        ..ImageBuild::default()
    };
    let err = docker.build_image(&build, &|_| {}).await.unwrap_err();
    match &err {
        BackendError::BuildFailed { step, message, .. } => {
            assert!(step.as_deref().unwrap_or("").contains("exit 7"), "{err}");
            assert!(message.contains("non-zero code: 7"), "{err}");
        }
        other => panic!("expected BuildFailed, got {other}"),
    }
}

#[tokio::test]
async fn missing_images_cannot_be_pulled_and_say_so() {
    let Some(docker) = docker_or_skip("missing_images").await else {
        return;
    };
    let reference = "localhost:1/sanctuary-missing:latest";
    assert!(docker.inspect_image(reference).await.unwrap().is_none());
    let err = docker.pull_image(reference).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::ImageUnavailable { reference: r, .. } if r == reference),
        "{err}"
    );
    assert!(err.to_string().contains("not present locally"), "{err}");
}

#[tokio::test]
async fn volumes_and_networks_are_ensured_idempotently_and_found_by_label() {
    let Some(docker) = docker_or_skip("volumes_and_networks").await else {
        return;
    };
    let project = TestProject::new("volnet");
    let labels = project.labels();
    let vol = project.object("data");
    let net = project.object("net");
    assert_eq!(
        docker.ensure_volume(&vol, &labels).await.unwrap(),
        Ensured::Created
    );
    assert_eq!(
        docker.ensure_volume(&vol, &labels).await.unwrap(),
        Ensured::AlreadyExisted
    );
    assert_eq!(
        docker.ensure_network(&net, &labels).await.unwrap(),
        Ensured::Created
    );
    assert_eq!(
        docker.ensure_network(&net, &labels).await.unwrap(),
        Ensured::AlreadyExisted
    );
    let filter = LabelFilter::new().with(PROJECT_LABEL, project.name.clone());
    let vols = docker.list_volumes(&filter).await.unwrap();
    assert_eq!(vols.iter().map(|v| &v.name).collect::<Vec<_>>(), vec![&vol]);
    let nets = docker.list_networks(&filter).await.unwrap();
    assert_eq!(nets.iter().map(|n| &n.name).collect::<Vec<_>>(), vec![&net]);

    docker.remove_volume(&vol).await.unwrap();
    docker.remove_network(&net).await.unwrap();
    assert!(docker.list_volumes(&filter).await.unwrap().is_empty());
    assert!(docker.remove_volume(&vol).await.unwrap_err().is_not_found());
    assert!(docker
        .remove_network(&net)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn a_service_container_gets_everything_it_declares() {
    let Some(docker) = docker_or_skip("a_service_container").await else {
        return;
    };
    let project = TestProject::new("service");
    let labels = project.labels();
    let vol = project.object("data");
    let front = project.object("front");
    let back = project.object("back");
    docker.ensure_volume(&vol, &labels).await.unwrap();
    docker.ensure_network(&front, &labels).await.unwrap();
    docker.ensure_network(&back, &labels).await.unwrap();
    let bind = tempfile::tempdir().unwrap();
    std::fs::write(bind.path().join("config.txt"), "from-host").unwrap();

    let spec = ContainerSpec {
        command: Some(
            ["httpd", "-f", "-p", "8080", "-h", "/www"]
                .map(String::from)
                .to_vec(),
        ),
        env: BTreeMap::from([("CLONE_NAME".into(), "Omega".into())]),
        ports: vec![PortSpec {
            host_ip: Some("127.0.0.1".into()),
            host_port: None,
            container_port: 8080,
            protocol: Protocol::Tcp,
        }],
        mounts: vec![
            MountSpec {
                source: MountSource::Volume(vol.clone()),
                target: "/www".into(),
                read_only: false,
            },
            MountSpec {
                source: MountSource::Bind(bind.path().to_path_buf()),
                target: "/config".into(),
                read_only: true,
            },
        ],
        networks: vec![
            NetworkAttachment {
                network: front.clone(),
                aliases: vec!["omega".into()],
            },
            NetworkAttachment {
                network: back.clone(),
                aliases: vec!["omega-back".into()],
            },
        ],
        restart: RestartPolicy::OnFailure {
            max_retries: Some(2),
        },
        cpus: Some(0.5),
        memory_bytes: Some(64 * 1024 * 1024),
        pids_limit: Some(64),
        health: health(&["wget", "-qO-", "http://127.0.0.1:8080/health"], 3),
        working_dir: Some("/www".into()),
        hostname: Some("omega-host".into()),
        ..base_spec(&project, "web", "")
    };
    docker.create_container(&spec).await.unwrap();
    let created = docker.inspect_container(&spec.name).await.unwrap().unwrap();
    assert_eq!(created.state, ContainerState::Created);

    let json = docker_inspect(&spec.name);
    let host = &json["HostConfig"];
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["Memory"], 64 * 1024 * 1024);
    assert_eq!(host["PidsLimit"], 64);
    assert_eq!(host["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(host["RestartPolicy"]["MaximumRetryCount"], 2);
    assert_eq!(host["PortBindings"]["8080/tcp"][0]["HostIp"], "127.0.0.1");
    let config = &json["Config"];
    assert!(config["Env"]
        .as_array()
        .unwrap()
        .contains(&"CLONE_NAME=Omega".into()));
    assert_eq!(config["Labels"][PROJECT_LABEL], project.name.as_str());
    assert_eq!(config["Hostname"], "omega-host");
    assert_eq!(config["WorkingDir"], "/www");
    assert_eq!(config["Healthcheck"]["Test"][0], "CMD");
    assert_eq!(config["Healthcheck"]["Interval"], 250_000_000);
    let networks = &json["NetworkSettings"]["Networks"];
    assert!(networks[&front]["Aliases"]
        .as_array()
        .unwrap()
        .contains(&"omega".into()));
    assert!(networks[&back]["Aliases"]
        .as_array()
        .unwrap()
        .contains(&"omega-back".into()));
    let mounts = json["Mounts"].as_array().unwrap();
    let config_mount = mounts
        .iter()
        .find(|m| m["Destination"] == "/config")
        .unwrap();
    assert_eq!(config_mount["RW"], false);
    assert_eq!(config_mount["Type"], "bind");

    // Content for httpd, through the copy API, before start (the volume is mounted).
    docker
        .copy_in(&spec.name, "/www", tar_with("health", b"running\n"))
        .await
        .unwrap();
    // Waiting on a container that is not started yet times out instead of misreading it.
    let err = docker
        .wait_healthy(&spec.name, Instant::now() + Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::HealthTimeout { .. }), "{err}");
    docker.start_container(&spec.name).await.unwrap();
    docker.wait_healthy(&spec.name, deadline(30)).await.unwrap();

    let info = docker.inspect_container(&spec.name).await.unwrap().unwrap();
    assert_eq!(info.state, ContainerState::Running);
    assert_eq!(info.health, HealthState::Healthy);
    assert!(info.started_at.is_some());
    let port = info
        .ports
        .iter()
        .find(|p| p.container_port == 8080)
        .unwrap();
    assert!(port.host_port > 0);
    let response = http_get(port.host_port, "/health");
    assert!(response.contains("running"), "{response}");

    let env = BTreeMap::from([("EXTRA".to_string(), "x1".to_string())]);
    let cmd: Vec<String> = [
        "sh",
        "-c",
        "cat /config/config.txt; echo $CLONE_NAME $EXTRA; touch /config/new",
    ]
    .map(String::from)
    .to_vec();
    let result = docker.exec(&spec.name, &cmd, &env).await.unwrap();
    assert_ne!(result.exit_code, 0, "the bind mount is read-only");
    assert!(result.output.contains("from-host"), "{}", result.output);
    assert!(result.output.contains("Omega x1"), "{}", result.output);
    assert!(result.output.contains("Read-only"), "{}", result.output);

    // Started a second time: not an error. Paused and unpaused; listed by label.
    docker.start_container(&spec.name).await.unwrap();
    docker.pause_container(&spec.name).await.unwrap();
    let paused = docker.inspect_container(&spec.name).await.unwrap().unwrap();
    assert_eq!(paused.state, ContainerState::Paused);
    docker.unpause_container(&spec.name).await.unwrap();
    let filter = LabelFilter::new().with(PROJECT_LABEL, project.name.clone());
    let listed = docker.list_containers(&filter, false).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, spec.name);
    assert_eq!(listed[0].state, ContainerState::Running);

    docker
        .stop_container(&spec.name, Duration::from_secs(1))
        .await
        .unwrap();
    let stopped = docker.inspect_container(&spec.name).await.unwrap().unwrap();
    assert_eq!(stopped.state, ContainerState::Exited);
    assert!(docker
        .list_containers(&filter, false)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        docker.list_containers(&filter, true).await.unwrap().len(),
        1
    );
    docker
        .stop_container(&spec.name, Duration::from_secs(1))
        .await
        .unwrap();
    docker.remove_container(&spec.name, false).await.unwrap();
    assert!(docker
        .inspect_container(&spec.name)
        .await
        .unwrap()
        .is_none());
    let err = docker.remove_container(&spec.name, true).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn wait_healthy_times_out_with_health_output_and_logs() {
    let Some(docker) = docker_or_skip("wait_healthy_times_out").await else {
        return;
    };
    let project = TestProject::new("unhealthy");
    let spec = ContainerSpec {
        health: health(&["sh", "-c", "echo not-ready-yet; exit 1"], 1000),
        ..base_spec(&project, "slow", "echo booting; exec sleep 600")
    };
    docker.create_container(&spec).await.unwrap();
    docker.start_container(&spec.name).await.unwrap();
    let started = Instant::now();
    let err = docker
        .wait_healthy(&spec.name, deadline(2))
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(1900));
    assert!(started.elapsed() < Duration::from_secs(5));
    match &err {
        BackendError::HealthTimeout { checks, logs, .. } => {
            assert!(checks.iter().any(|c| c.contains("not-ready-yet")), "{err}");
            assert!(logs.contains(&"booting".to_string()), "{err}");
        }
        other => panic!("expected HealthTimeout, got {other}"),
    }
}

#[tokio::test]
async fn an_exiting_container_ends_the_health_wait_and_reports_its_code() {
    let Some(docker) = docker_or_skip("an_exiting_container").await else {
        return;
    };
    let project = TestProject::new("exits");
    let spec = ContainerSpec {
        health: health(&["true"], 3),
        ..base_spec(&project, "job", "echo bye >&2; exit 3")
    };
    docker.create_container(&spec).await.unwrap();
    docker.start_container(&spec.name).await.unwrap();
    assert_eq!(docker.wait_exit(&spec.name, deadline(20)).await.unwrap(), 3);
    let err = docker
        .wait_healthy(&spec.name, deadline(20))
        .await
        .unwrap_err();
    match &err {
        BackendError::ExitedEarly {
            exit_code, logs, ..
        } => {
            assert_eq!(*exit_code, 3);
            assert!(logs.contains(&"bye".to_string()), "{err}");
        }
        other => panic!("expected ExitedEarly, got {other}"),
    }
    let lines: Vec<_> = docker
        .logs(&spec.name, false, Some(5))
        .map(|l| l.unwrap())
        .collect()
        .await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].stream, LogStream::Stderr);
}

#[tokio::test]
async fn copy_in_and_out_round_trip_a_file() {
    let Some(docker) = docker_or_skip("copy_in_and_out").await else {
        return;
    };
    let project = TestProject::new("copy");
    let spec = base_spec(&project, "box", "exec sleep 600");
    docker.create_container(&spec).await.unwrap();
    docker.start_container(&spec.name).await.unwrap();
    // The scratch image has no /tmp; the target directory must exist.
    let mkdir = ["mkdir", "-p", "/tmp"].map(String::from).to_vec();
    let made = docker
        .exec(&spec.name, &mkdir, &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(made.exit_code, 0, "{}", made.output);
    docker
        .copy_in(&spec.name, "/tmp", tar_with("note.txt", b"round trip\n"))
        .await
        .unwrap();
    let cat = ["cat", "/tmp/note.txt"].map(String::from).to_vec();
    let result = docker
        .exec(&spec.name, &cat, &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(result.exit_code, 0);
    assert_eq!(result.output, "round trip\n");

    let tar_bytes = docker.copy_out(&spec.name, "/tmp/note.txt").await.unwrap();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(entry.path().unwrap().to_str(), Some("note.txt"));
    let mut content = String::new();
    entry.read_to_string(&mut content).unwrap();
    assert_eq!(content, "round trip\n");

    let err = docker
        .copy_out(&spec.name, "/no/such/file")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/no/such/file"), "{err}");
}

#[tokio::test]
async fn a_taken_host_port_is_reported_as_port_in_use() {
    let Some(docker) = docker_or_skip("a_taken_host_port").await else {
        return;
    };
    let project = TestProject::new("ports");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = listener.local_addr().unwrap().port();
    let publish = |port: u16| {
        vec![PortSpec {
            host_ip: Some("127.0.0.1".into()),
            host_port: Some(port),
            container_port: 80,
            protocol: Protocol::Tcp,
        }]
    };

    // Held by a host process.
    let spec = ContainerSpec {
        ports: publish(taken),
        ..base_spec(&project, "a", "exec sleep 600")
    };
    docker.create_container(&spec).await.unwrap();
    let err = docker.start_container(&spec.name).await.unwrap_err();
    match &err {
        BackendError::PortInUse { container, port } => {
            assert_eq!(container, &spec.name);
            assert!(port.ends_with(&format!(":{taken}")), "{err}");
        }
        other => panic!("expected PortInUse, got {other}"),
    }
    drop(listener);

    // Held by another container.
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let first = ContainerSpec {
        ports: publish(free),
        ..base_spec(&project, "b", "exec sleep 600")
    };
    let second = ContainerSpec {
        ports: publish(free),
        ..base_spec(&project, "c", "exec sleep 600")
    };
    docker.create_container(&first).await.unwrap();
    docker.create_container(&second).await.unwrap();
    docker.start_container(&first.name).await.unwrap();
    let err = docker.start_container(&second.name).await.unwrap_err();
    assert!(matches!(err, BackendError::PortInUse { .. }), "{err}");
}

#[tokio::test]
async fn absent_objects_are_none_or_not_found() {
    let Some(docker) = docker_or_skip("absent_objects").await else {
        return;
    };
    let project = TestProject::new("absent");
    let name = project.object("ghost");
    assert!(docker.inspect_container(&name).await.unwrap().is_none());
    for err in [
        docker.start_container(&name).await.unwrap_err(),
        docker
            .stop_container(&name, Duration::from_secs(1))
            .await
            .unwrap_err(),
        docker.wait_healthy(&name, deadline(1)).await.unwrap_err(),
    ] {
        assert!(err.is_not_found(), "{err}");
    }
    let missing_image = ContainerSpec {
        image: "sanctuary-no-such-image:1".into(),
        ..base_spec(&project, "noimg", "true")
    };
    let err = docker.create_container(&missing_image).await.unwrap_err();
    assert!(
        matches!(err, BackendError::ImageUnavailable { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn the_daemon_declaring_a_container_unhealthy_ends_the_wait_early() {
    let Some(docker) = docker_or_skip("unhealthy_ends_the_wait").await else {
        return;
    };
    let project = TestProject::new("sick");
    let spec = ContainerSpec {
        health: health(&["sh", "-c", "echo broken-check; exit 1"], 1),
        ..base_spec(&project, "sick", "exec sleep 600")
    };
    docker.create_container(&spec).await.unwrap();
    docker.start_container(&spec.name).await.unwrap();
    let started = Instant::now();
    let err = docker
        .wait_healthy(&spec.name, deadline(60))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    match &err {
        BackendError::Unhealthy { checks, .. } => {
            assert!(checks.iter().any(|c| c.contains("broken-check")), "{err}");
        }
        other => panic!("expected Unhealthy, got {other}"),
    }
}

#[tokio::test]
async fn the_cleanup_guard_removes_labelled_objects_even_when_a_test_panics() {
    if docker_or_skip("the_cleanup_guard").await.is_none() {
        return;
    }
    let mut project_name = String::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let project = TestProject::new("guard");
        project_name = project.name.clone();
        let label = format!("{PROJECT_LABEL}={}", project.name);
        let created = std::process::Command::new("docker")
            .args(["volume", "create", "--label", &label, &project.object("v")])
            .output()
            .unwrap();
        assert!(created.status.success());
        panic!("a failing test");
    }));
    assert!(outcome.is_err());
    let filter = format!("label={PROJECT_LABEL}={project_name}");
    let left = crate::docker_support::docker_lines(&["volume", "ls", "-q", "--filter", &filter]);
    assert!(left.is_empty(), "left behind: {left:?}");
}
