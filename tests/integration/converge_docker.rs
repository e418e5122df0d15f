//! Convergence against the real engine: every example and every ```kdl block of README.md and
//! docs/ that declares services is applied, then applied again — the second apply must say
//! `No changes` and `plan --detailed-exitcode` must exit 0. Then a drift test: a container
//! stopped, one removed and one recreated by hand with other env are repaired, and only they.
//!
//! There is no registry here, so each case is made buildable first: every registry image a
//! manifest names becomes one stand-in image built from the static busybox, carrying what the
//! documented services expect of their images (an `httpd` document root, a `node` user, the
//! `redis-cli` and `pg_isready` their health checks call); a build context the docs only
//! mention gets a Dockerfile on that image, or the Dockerfile the doc shows beside the block.
//! Without a command of its own the stand-in serves its document root on ports 8080 and 3000,
//! as the documented images do.
//! Host ports move to this process's range; paths the manifests bind or read are created.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;

use crate::apply_docker::{sanct_env, text};
use crate::docker_support::{copy_dir, docker_inspect, docker_lines, docker_or_skip, TestProject};
use crate::docs_kdl::{doc_files, kdl_blocks};

fn docker_available(test: &str) -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(docker_or_skip(test)).is_some()
}

/// The stand-in for every registry image, built once per test process.
fn stub_image() -> String {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let tag = "sanct-test-stub:1".to_string();
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if *built {
        return tag;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy("/bin/busybox", d.join("busybox")).unwrap();
    let files: [(&str, &str, u32); 10] = [
        (
            "etc/passwd",
            "root:x:0:0::/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n",
            0o644,
        ),
        ("etc/group", "root:x:0:\nnode:x:1000:\n", 0o644),
        ("home/node/.keep", "", 0o644),
        ("tmp/.keep", "", 0o644),
        ("www/index.html", "Welcome; running\n", 0o644),
        ("www/health", "{\"status\":\"running\"}\n", 0o644),
        (
            "www/status",
            "{\"status\":{\"state\":\"running\"}}\n",
            0o644,
        ),
        ("srv/index.html", "Welcome; running\n", 0o644),
        ("bin/redis-cli", "#!/bin/sh\necho PONG\n", 0o755),
        ("bin/pg_isready", "#!/bin/sh\nexit 0\n", 0o755),
    ];
    write_files(&d.join("rootfs"), &files);
    std::fs::write(
        d.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         COPY rootfs/ /\n\
         CMD [\"sh\", \"-c\", \"httpd -p 8080 -h /www; httpd -p 3000 -h /www; exec sleep 1000000\"]\n",
    )
    .unwrap();
    let out = Command::new("docker")
        .args(["build", "-q", "-t", &tag])
        .arg(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    *built = true;
    tag
}

/// Writes each `(path, text, mode)` under `root`, creating directories.
fn write_files(root: &Path, files: &[(&str, &str, u32)]) {
    use std::os::unix::fs::PermissionsExt;
    for (rel, text, mode) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

/// A host port of this process's range, never the same twice.
fn next_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    46000 + (std::process::id() % 150) as u16 * 60 + NEXT.fetch_add(1, Ordering::SeqCst)
}

/// One manifest to converge: its text, files beside it, and where it came from.
struct Case {
    origin: String,
    /// A directory to start from (an example), or none (a doc block).
    copy_of: Option<PathBuf>,
    text: String,
    /// The Dockerfile the doc shows beside the block, if any.
    dockerfile: Option<String>,
}

/// Every value of `prop "..."` in `text`.
fn values_of(text: &str, prop: &str) -> Vec<String> {
    let key = format!("{prop} \"");
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix(&key)?;
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

/// The case's manifest made runnable here, written into `dir`; returns the env to run with.
fn prepare(case: &Case, project: &str, dir: &Path) -> Vec<(String, String)> {
    let stub = stub_image();
    if let Some(src) = &case.copy_of {
        copy_dir(src, dir);
    }
    let mut text = String::new();
    let mut named = false;
    for line in case.text.lines() {
        let mut line = line.to_string();
        if line.starts_with("project \"") {
            let end = line[9..].find('"').map(|i| i + 9).unwrap_or(line.len() - 1);
            line = format!("project \"{project}\"{}", &line[end + 1..]);
            named = true;
        }
        // A registry image becomes the stand-in.
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("image \"") {
            let end = rest.find('"').unwrap_or(rest.len());
            let reference = &rest[..end];
            if reference.contains(':') || reference.contains('/') {
                line = line.replacen(reference, &stub, 1);
            }
        }
        // Host ports move to this process's range.
        while let Some(at) = line.find("host=") {
            let digits: String = line[at + 5..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if digits.is_empty() {
                break;
            }
            line = line.replacen(
                &format!("host={digits}"),
                &format!("hostport={}", next_port()),
                1,
            );
        }
        text.push_str(&line.replace("hostport=", "host="));
        text.push('\n');
    }
    if !named {
        text = format!("project \"{project}\"\n{text}");
    }
    std::fs::write(dir.join("Sanctuary.kdl"), &text).unwrap();

    // Build contexts: a registry base becomes the stand-in; a missing one is made.
    for ctx in values_of(&text, "context") {
        let ctx_dir = dir.join(&ctx);
        std::fs::create_dir_all(&ctx_dir).unwrap();
        let dockerfile = ctx_dir.join("Dockerfile");
        let from_registry = std::fs::read_to_string(&dockerfile)
            .map(|t| {
                t.lines()
                    .find(|l| l.starts_with("FROM "))
                    .is_some_and(|l| l.contains(':') || l.contains('/'))
            })
            .unwrap_or(true);
        if from_registry {
            let body = case
                .dockerfile
                .clone()
                .unwrap_or_else(|| format!("FROM {stub}\n"));
            std::fs::write(&dockerfile, body).unwrap();
        }
    }
    // What the documented manifests read or bind.
    let home = dir.join("home");
    for d in [
        "web",
        "project",
        "config",
        "workspace/manifests",
        "scripts",
        "home/.claude",
        "home/notes",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    write_files(
        dir,
        &[
            ("web/app.js", "console.log('shop');\n", 0o644),
            ("scripts/migrate.sh", "#!/bin/sh\nexit 0\n", 0o755),
            ("scripts/fixtures.sh", "#!/bin/sh\nexit 0\n", 0o755),
            (
                "home/.claude/settings.json",
                "{\"theme\": \"dark\"}\n",
                0o644,
            ),
            ("home/.claude.json", "{\"mcpServers\": {}}\n", 0o644),
        ],
    );
    vec![
        ("HOME".into(), home.display().to_string()),
        ("USER".into(), "alice".into()),
        ("ANTHROPIC_API_KEY".into(), "sk-test".into()),
        ("DB_PASSWORD".into(), "db-test".into()),
    ]
}

fn sanct(dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    sanct_env(dir, args, &env)
}

/// Applies the case twice; `Err` says what went wrong.
fn converge(case: &Case, n: usize) -> Result<(), String> {
    let project = TestProject::new(&format!("conv{n}"));
    let dir = tempfile::tempdir().unwrap();
    let env = prepare(case, &project.name, dir.path());
    let fail = |step: &str, out: &Output| {
        Err(format!(
            "{}: {step} exited {:?}:\n{}",
            case.origin,
            out.status.code(),
            text(out)
        ))
    };
    let first = sanct(dir.path(), &env, &["apply", "-y"]);
    if first.status.code() != Some(0) {
        return fail("the first apply", &first);
    }
    let second = sanct(dir.path(), &env, &["apply", "-y"]);
    if second.status.code() != Some(0) || !text(&second).contains("No changes") {
        return fail("the second apply (expected `No changes`)", &second);
    }
    let plan = sanct(dir.path(), &env, &["plan", "--detailed-exitcode"]);
    if plan.status.code() != Some(0) {
        return fail("plan --detailed-exitcode", &plan);
    }
    Ok(())
}

/// Converges every case at once (each has its own project, directory and ports).
fn converge_all(cases: &[Case]) {
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .enumerate()
            .map(|(n, c)| s.spawn(move || converge(c, n)))
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())).err())
            .collect()
    });
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// The Dockerfile shown right after the block at `line`, before any other ```kdl block.
fn dockerfile_after(markdown: &str, line: usize) -> Option<String> {
    let rest: Vec<&str> = markdown.lines().skip(line).collect();
    let start = rest.iter().position(|l| l.trim() == "```dockerfile")?;
    if rest[..start].iter().any(|l| l.trim() == "```kdl") {
        return None;
    }
    let body: Vec<&str> = rest[start + 1..]
        .iter()
        .take_while(|l| l.trim() != "```")
        .copied()
        .collect();
    Some(format!("{}\n", body.join("\n")))
}

#[test]
fn every_documented_stack_converges_on_the_second_apply() {
    if !docker_available("converge_docs") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cases = Vec::new();
    for path in doc_files() {
        let md = std::fs::read_to_string(&path).unwrap();
        for block in kdl_blocks(&md).unwrap() {
            let declares_services = block.text.lines().any(|l| l.starts_with("service \""));
            if block.should_fail || !declares_services {
                continue;
            }
            cases.push(Case {
                origin: format!(
                    "{}:{}",
                    path.strip_prefix(root).unwrap_or(&path).display(),
                    block.line
                ),
                copy_of: None,
                dockerfile: dockerfile_after(&md, block.line),
                text: block.text,
            });
        }
    }
    // The README's stack and at least the reference's are among them.
    assert!(cases.len() >= 8, "found only {} blocks", cases.len());
    assert!(cases
        .iter()
        .any(|c| c.origin.starts_with("README.md") && c.dockerfile.is_some()));
    converge_all(&cases);
}

#[test]
fn every_example_converges_on_the_second_apply() {
    if !docker_available("converge_examples") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let kdl = dir.join("Sanctuary.kdl");
        if kdl.is_file() {
            cases.push(Case {
                origin: format!("examples/{}", dir.file_name().unwrap().to_string_lossy()),
                text: std::fs::read_to_string(&kdl).unwrap(),
                copy_of: Some(dir),
                dockerfile: None,
            });
        }
    }
    assert!(cases.len() >= 2);
    converge_all(&cases);
}

fn container_id(name: &str) -> String {
    docker_inspect(name)["Id"].as_str().unwrap().to_string()
}

/// Recreates `name` by hand from its own inspect data — same image, labels, network and
/// command — with one env value changed: what a person running `docker run` would do.
fn recreate_with_env(name: &str, var: &str, value: &str) {
    let c = docker_inspect(name);
    let image = c["Config"]["Image"].as_str().unwrap().to_string();
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.into()];
    for (k, v) in c["Config"]["Labels"].as_object().unwrap() {
        args.push("--label".into());
        args.push(format!("{k}={}", v.as_str().unwrap()));
    }
    for kv in c["Config"]["Env"].as_array().unwrap() {
        let kv = kv.as_str().unwrap();
        let changed = match kv.split_once('=') {
            Some((k, _)) if k == var => format!("{var}={value}"),
            _ => kv.to_string(),
        };
        args.push("-e".into());
        args.push(changed);
    }
    let network = c["NetworkSettings"]["Networks"]
        .as_object()
        .and_then(|n| n.keys().next().cloned())
        .unwrap();
    args.push("--network".into());
    args.push(network);
    if let Some(ep) = c["Config"]["Entrypoint"].as_array() {
        args.push("--entrypoint".into());
        args.push(ep[0].as_str().unwrap().to_string());
    }
    args.push(image);
    if let Some(ep) = c["Config"]["Entrypoint"].as_array() {
        args.extend(ep[1..].iter().map(|v| v.as_str().unwrap().to_string()));
    }
    if let Some(cmd) = c["Config"]["Cmd"].as_array() {
        args.extend(cmd.iter().map(|v| v.as_str().unwrap().to_string()));
    }
    docker_lines(&["rm", "-f", name]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = Command::new("docker").args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn drift_is_repaired_exactly() {
    if !docker_available("drift") {
        return;
    }
    let project = TestProject::new("drift");
    let dir = tempfile::tempdir().unwrap();
    let case = Case {
        origin: "examples/voidcat".into(),
        copy_of: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/voidcat")),
        text: std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/voidcat/Sanctuary.kdl"),
        )
        .unwrap(),
        dockerfile: None,
    };
    let env = prepare(&case, &project.name, dir.path());
    let d = dir.path();
    let out = sanct(d, &env, &["apply", "-y"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let c = |s: &str| project.object(s);
    let before: Vec<(String, String)> = ["omega", "beta", "gamma", "delta", "sigma"]
        .iter()
        .map(|s| (s.to_string(), container_id(&c(s))))
        .collect();

    docker_lines(&["stop", "-t", "1", &c("beta")]);
    docker_lines(&["rm", "-f", &c("gamma")]);
    recreate_with_env(&c("delta"), "CLONE_ROLE", "saboteur");
    let delta_by_hand = container_id(&c("delta"));

    let plan = text(&sanct(d, &env, &["plan"]));
    let line = |node: &str| {
        plan.lines()
            .find(|l| l.contains(node))
            .unwrap_or_else(|| panic!("{node} not in\n{plan}"))
            .to_string()
    };
    assert!(line("service.beta").contains("start"), "{plan}");
    assert!(line("service.gamma").contains("create"), "{plan}");
    assert!(line("service.delta").contains("replace"), "{plan}");
    assert!(
        plan.contains("env CLONE_ROLE changed outside sanctuary"),
        "{plan}"
    );
    for s in ["service.omega", "service.sigma"] {
        assert!(line(s).contains("up to date"), "{plan}");
    }

    // `why` explains a service as well as a task.
    let why = text(&sanct(d, &env, &["why", "service.delta"]));
    assert!(why.contains("service.delta would be replaced"), "{why}");
    assert!(
        why.contains("env CLONE_ROLE changed outside sanctuary"),
        "{why}"
    );

    let out = sanct(d, &env, &["apply", "-y"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for (svc, old) in &before {
        let now = container_id(&c(svc));
        match svc.as_str() {
            "beta" | "omega" | "sigma" => assert_eq!(&now, old, "{svc} was touched"),
            "gamma" => assert_ne!(&now, old),
            _ => assert_ne!(now, delta_by_hand, "delta was not replaced"),
        }
    }
    let env_now = docker_inspect(&c("delta"))["Config"]["Env"].to_string();
    assert!(env_now.contains("CLONE_ROLE=tester"), "{env_now}");
    let plan = sanct(d, &env, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));

    // A changed file of the build context: `why` names it, for the image and its services.
    let script = d.join("docker/clone.sh");
    let edited = format!("{}\n# edited\n", std::fs::read_to_string(&script).unwrap());
    std::fs::write(&script, edited).unwrap();
    let why = text(&sanct(d, &env, &["why", "service.omega"]));
    assert!(why.contains("service.omega would be replaced"), "{why}");
    assert!(
        why.contains("image.clone changed: input clone.sh changed"),
        "{why}"
    );
    let why = text(&sanct(d, &env, &["--json", "why", "image.clone"]));
    let v: serde_json::Value = serde_json::from_str(why.lines().next().unwrap()).unwrap();
    assert_eq!(v["action"], "build", "{v}");
    assert_eq!(v["reasons"][0], "input clone.sh changed", "{v}");
}
