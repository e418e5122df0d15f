//! The invalid-manifest corpus: one manifest per mistake a user can make, each run through
//! `sanctuary validate`. Every case must exit 2 without panicking, put its label on the line
//! that holds the mistake, and render exactly the text in its snapshot.

use crate::support::{invalid, Test};

/// Runs `validate` on `text`, checks exit code 2, no panic and a label on `line` whose text
/// contains `label`, then snapshots the rendered diagnostics.
macro_rules! case {
    ($name:ident, $line:expr, $label:expr, $text:expr $(, has = $has:expr)* $(,)?) => {
        #[test]
        fn $name() {
            let out = invalid($text);
            out.label_at($line, $label);
            $( out.stderr_has($has); )*
            insta::assert_snapshot!(out.stderr);
        }
    };
}

// ---- syntax and structure ----

case!(
    kdl_syntax_error,
    4,
    "",
    r#"project "demo"
service "omega" {
    image "busybox:1"
    command "sh" "-c" }
}
"#,
);

case!(
    unknown_top_level_node,
    2,
    "not a sanctuary node",
    r#"project "demo"
servce "omega" {
    image "busybox:1"
}
"#,
    has = "did you mean `service`?",
);

case!(
    unknown_child_of_service,
    3,
    "unknown node",
    r#"project "demo"
service "omega" {
    imgae "busybox:1"
}
"#,
    has = "did you mean `image`?",
);

case!(
    unknown_child_of_health,
    5,
    "unknown node",
    r#"project "demo"
service "omega" {
    image "busybox:1"
    health {
        intervall "1s"
        cmd "true"
    }
}
"#,
    has = "did you mean `interval`?",
);

case!(
    unknown_child_of_task,
    4,
    "unknown node",
    r#"project "demo"
task "build" {
    run "make"
    inputz "src/**"
}
"#,
    has = "did you mean `inputs`?",
);

case!(
    unknown_property_with_suggestion,
    4,
    "unknown property",
    r#"project "demo"
service "omega" {
    image "busybox:1"
    port 3000 hots=3000
}
"#,
    has = "did you mean `host`?",
);

case!(
    service_without_name,
    2,
    "",
    r#"project "demo"
service {
    image "busybox:1"
}
"#,
);

case!(
    service_without_image,
    2,
    "",
    r#"project "demo"
service "omega" {
    command "sleep" "1"
}
"#,
    has = "has no image",
);

case!(
    task_without_run,
    2,
    "",
    r#"project "demo"
task "build" {
    description "Compile everything"
}
"#,
    has = "nothing to run",
);

case!(
    check_missing_from_test,
    2,
    "",
    r#"project "demo"
test "smoke" {
    description "checks nothing"
}
"#,
);

case!(
    two_checks_in_one_test,
    4,
    "`tcp` check",
    r#"project "demo"
test "smoke" {
    run "true"
    tcp "127.0.0.1:3000"
}
"#,
);

// ---- single values ----

case!(
    duration_without_unit,
    5,
    "invalid value",
    r#"project "demo"
service "omega" {
    image "busybox:1"
    health {
        interval "30"
        cmd "true"
    }
}
"#,
);

case!(
    duration_with_unknown_unit,
    3,
    "invalid value",
    r#"project "demo"
task "build" {
    timeout "2x"
    run "make"
}
"#,
);

case!(
    size_with_unknown_unit,
    4,
    "invalid value",
    r#"project "demo"
service "omega" {
    image "busybox:1"
    resources memory="512q"
}
"#,
);

case!(
    port_with_unknown_protocol,
    4,
    "invalid port spec",
    r#"project "demo"
service "omega" {
    image "busybox:1"
    port "8080:80/sctp"
}
"#,
);

case!(
    port_out_of_range,
    4,
    "invalid port spec",
    r#"project "demo"
service "omega" {
    image "busybox:1"
    port "70000"
}
"#,
);

case!(
    cpus_zero,
    4,
    "invalid cpus",
    r#"project "demo"
service "omega" {
    image "busybox:1"
    resources cpus=0
}
"#,
);

case!(
    cpus_not_a_number,
    4,
    "invalid cpus",
    r#"project "demo"
service "omega" {
    image "busybox:1"
    resources cpus="lots"
}
"#,
);

case!(
    unknown_restart_policy,
    4,
    "invalid value",
    r#"project "demo"
service "omega" {
    image "busybox:1"
    restart "sometimes"
}
"#,
);

case!(
    unknown_condition_keyword,
    8,
    "invalid value",
    r#"project "demo"
service "db" {
    image "busybox:1"
    health { cmd "true"; }
}
service "app" {
    image "busybox:1"
    depends-on "db" condition="ready"
}
"#,
);

case!(
    invalid_project_name,
    1,
    "invalid project name",
    r#"project "my demo!"
task "build" {
    run "make"
}
"#,
);

case!(
    invalid_file_mode,
    6,
    "octal",
    r#"project "demo"
volume "home"
sync "config" {
    host "./config"
    volume "home" path="/home/node"
    file-mode "0999"
}
"#,
);

case!(
    invalid_url,
    3,
    "",
    r#"project "demo"
test "up" {
    http "not a url" status=200
}
"#,
);

// ---- names and references ----

case!(
    duplicate_service_names,
    5,
    "",
    r#"project "demo"
service "omega" {
    image "busybox:1"
}
service "omega" {
    image "busybox:2"
}
"#,
    has = "declared twice",
);

case!(
    undeclared_image,
    6,
    "no image named `clne`",
    r#"project "demo"
image "clone" {
    context "docker"
}
service "omega" {
    image "clne"
}
"#,
    has = "did you mean `clone`?",
);

case!(
    undeclared_volume,
    5,
    "no volume named `artifact`",
    r#"project "demo"
volume "artifacts"
service "omega" {
    image "busybox:1"
    mount "artifact" "/data"
}
"#,
    has = "did you mean `artifacts`?",
);

case!(
    undeclared_network,
    4,
    "no network named `backend`",
    r#"project "demo"
service "omega" {
    image "busybox:1"
    network "backend"
}
"#,
);

case!(
    undeclared_service_in_needs,
    6,
    "",
    r#"project "demo"
service "omega" {
    image "busybox:1"
}
test "up" {
    needs "omgea"
    tcp "127.0.0.1:3000"
}
"#,
    has = "did you mean `omega`?",
);

case!(
    undeclared_task_in_depends_on,
    6,
    "",
    r#"project "demo"
task "build" {
    run "make"
}
task "deploy" {
    depends-on "biuld"
    run "make deploy"
}
"#,
    has = "did you mean `build`?",
);

case!(
    undeclared_test_in_depends_on,
    7,
    "",
    r#"project "demo"
test "smoke" {
    run "true"
}
task "release" {
    run "make release"
    depends-on "test.smok"
}
"#,
);

case!(
    undeclared_secret,
    7,
    "",
    r#"project "demo"
secret "api-key" {
    env "API_KEY"
}
service "omega" {
    image "busybox:1"
    secret-env "API_KEY" from="api-kye"
}
"#,
);

case!(
    ambiguous_depends_on,
    7,
    "ambiguous name",
    r#"project "demo"
volume "data"
task "data" {
    run "make data"
}
task "report" {
    depends-on "data"
    run "make report"
}
"#,
    has = "`task.data`",
);

#[test]
fn cycle_of_three_names_every_member() {
    let out = invalid(
        r#"project "demo"
task "a" {
    run "a"
    depends-on "b"
}
task "b" {
    run "b"
    depends-on "c"
}
task "c" {
    run "c"
    depends-on "a"
}
"#,
    );
    out.stderr_has("dependency cycle")
        .label_at(4, "task.a depends on task.b")
        .label_at(8, "task.b depends on task.c")
        .label_at(12, "task.c depends on task.a");
    let heading = out
        .stderr
        .lines()
        .find(|l| l.contains("dependency cycle"))
        .unwrap_or_default();
    for name in ["task.a", "task.b", "task.c"] {
        assert!(heading.contains(name), "{name} missing from {heading:?}");
    }
    insta::assert_snapshot!(out.stderr);
}

case!(
    self_dependency,
    4,
    "lists itself in depends-on",
    r#"project "demo"
task "loop" {
    run "true"
    depends-on "loop"
}
"#,
    has = "task.loop depends on itself",
);

case!(
    cycle_through_an_implied_use,
    6,
    "service.web uses image.app",
    r#"project "demo"
image "app" {
    context "."
    depends-on "web"
}
service "web" {
    image "app"
}
"#,
    has = "image.app depends on service.web",
);

case!(
    secret_file_owner_not_numeric,
    6,
    "expected \"uid:gid\"",
    r#"project "demo"
secret "tok" { env "TOK"; }
service "app" {
    image "busybox:1"
    command "sleep" "1"
    secret-file "tok" owner="node"
}
"#,
    has = "secret-file owner `node` is not numeric",
);

#[test]
fn two_services_publish_one_host_port() {
    let out = invalid(
        r#"project "demo"
service "omega" {
    image "busybox:1"
    port 3000 host=8080
}
service "beta" {
    image "busybox:1"
    port "8080:3001"
}
"#,
    );
    out.label_at(8, "published again here")
        .label_at(4, "first published here");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn healthy_condition_on_service_without_health() {
    let out = invalid(
        r#"project "demo"
service "db" {
    image "busybox:1"
}
service "app" {
    image "busybox:1"
    depends-on "db" condition="healthy"
}
"#,
    );
    out.label_at(7, "condition=\"healthy\"")
        .label_at(2, "declared without `health`");
    insta::assert_snapshot!(out.stderr);
}

case!(
    healthy_condition_on_task,
    6,
    "only services have health",
    r#"project "demo"
task "migrate" {
    run "make migrate"
}
task "seed" {
    depends-on "migrate" condition="healthy"
    run "make seed"
}
"#,
);

case!(
    unset_variable_without_default,
    4,
    "used here",
    r#"project "demo"
service "omega" {
    image "busybox:1"
    env TOKEN="${SANCTUARY_TEST_SURELY_UNSET}"
}
"#,
    has = "SANCTUARY_TEST_SURELY_UNSET",
);

// ---- kind-specific rules ----

#[test]
fn dockerfile_outside_context() {
    let out = Test::manifest(
        r#"project "demo"
image "app" {
    context "docker"
    dockerfile "Dockerfile"
}
"#,
    )
    .file("docker/.keep", "")
    .file("Dockerfile", "FROM scratch\n")
    .args(&["validate"])
    .run();
    out.code(2).no_panic();
    assert!(
        out.labels().iter().any(|(l, _)| *l == 4),
        "no label on line 4: {:?}\n{}",
        out.labels(),
        out.stderr
    );
    out.stderr_has("outside its build context");
    insta::assert_snapshot!(out.stderr);
}

case!(
    backup_without_source,
    2,
    "",
    r#"project "demo"
backup "nothing" {
    copy "primary" path="./backups"
}
"#,
    has = "has no source",
);

case!(
    backup_with_two_sources,
    4,
    "volume here",
    r#"project "demo"
volume "data"
backup "both" {
    volume "data"
    path "./data"
    copy "primary" path="./backups"
}
"#,
    has = "both a volume and a path",
);

case!(
    copy_without_destination,
    5,
    "where does this copy go?",
    r#"project "demo"
volume "data"
backup "data" {
    volume "data"
    copy "primary" media="disk"
}
"#,
);

#[test]
fn warnings_wait_until_errors_are_fixed() {
    // Judged on what resolved, this backup would be "0 copies": a false warning.
    let out = invalid(
        r#"project "demo"
volume "data"
backup "data" {
    volume "data"
    copy "primary" media="disk"
}
"#,
    );
    assert!(!out.stderr.contains("3-2-1"), "{}", out.stderr);
    assert!(!out.stderr.contains("Warning"), "{}", out.stderr);
}

#[test]
fn warnings_of_a_valid_manifest_are_shown() {
    let out = Test::manifest(
        r#"project "demo"
volume "data"
backup "data" {
    volume "data"
    copy "primary" path="./backups" media="disk"
}
"#,
    )
    .args(&["validate"])
    .run();
    out.code(0)
        .no_panic()
        .stdout_has("(1 warning)")
        .stderr_has("backup `data` is not 3-2-1: 1 copy (3 recommended)")
        .label_at(3, "backup declared here");
}

case!(
    sync_without_host,
    3,
    "",
    r#"project "demo"
volume "home"
sync "config" {
    volume "home" path="/home/node"
}
"#,
    has = "no host side",
);

#[test]
fn rewrite_clash() {
    let out = invalid(
        r#"project "demo"
volume "home"
sync "config" {
    host "./config"
    volume "home" path="/home/node"
    rewrite "/Users/alice/" "/home/node/"
    rewrite "/Users/bob/" "/home/node/"
}
"#,
    );
    out.label_at(7, "this rewrite")
        .label_at(6, "clashes with this one");
    insta::assert_snapshot!(out.stderr);
}

case!(
    health_with_cmd_and_shell,
    4,
    "both given",
    r#"project "demo"
service "omega" {
    image "busybox:1"
    health {
        cmd "true"
        shell "true"
    }
}
"#,
    has = "either `cmd` or `shell`",
);

case!(
    exec_test_without_command,
    6,
    "",
    r#"project "demo"
service "omega" {
    image "busybox:1"
}
test "inside" {
    exec "omega"
}
"#,
);

// ---- whole-manifest behaviour ----

#[test]
fn every_error_in_a_manifest_is_reported() {
    // A node whose values fail to decode is not checked further (its references would only
    // repeat the first error), so the mistakes are spread over several nodes, with two
    // decode errors in one node to show that decoding continues past the first.
    let out = invalid(
        r#"project "demo"
servce "x"
service "omega" {
    image "clne"
}
service "beta" {
    image "busybox:1"
    restart "sometimes"
    resources memory="1q"
}
service "gamma" {
    image "busybox:1"
    port "8080:80/sctp"
}
task "build" {
    description "no run"
}
task "loop" {
    run "true"
    depends-on "loop"
}
"#,
    );
    out.stderr_has("the manifest has 7 errors");
    // One summary heading plus one per error.
    assert_eq!(out.error_headings(), 8, "{}", out.stderr);
    for line in [2, 4, 8, 9, 13, 15, 20] {
        assert!(
            out.labels().iter().any(|(l, _)| *l == line),
            "no label on line {line}: {:?}\n{}",
            out.labels(),
            out.stderr
        );
    }
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn variable_from_dotenv_beside_the_manifest() {
    let out = Test::manifest(
        r#"project "demo"
service "omega" {
    image "busybox:1"
    env TOKEN="${SANCTUARY_TEST_DOTENV_TOKEN}"
}
"#,
    )
    .file(".env", "SANCTUARY_TEST_DOTENV_TOKEN=from-dotenv\n")
    .env_remove("SANCTUARY_TEST_DOTENV_TOKEN")
    .args(&["validate"])
    .run();
    out.code(0).no_panic().stdout_has("valid");
}

#[test]
fn manifest_is_found_from_a_subdirectory() {
    let out = Test::manifest(
        r#"project "found"
task "build" {
    run "make"
}
"#,
    )
    .dir("src/deep")
    .current_dir("src/deep")
    .args(&["validate"])
    .run();
    out.code(0).no_panic().stdout_has("project found");
}

// ---- supervision: alerts, schedules, restart limits ----

case!(
    alert_webhook_url_is_malformed,
    3,
    "not a URL",
    r#"project "demo"
alert "ops" {
    webhook url="hooks.example.com/x"
}
"#,
);

case!(
    alert_webhook_url_is_not_http,
    3,
    "scheme `ftp`",
    r#"project "demo"
alert "ops" {
    webhook url="ftp://hooks.example.com/x"
}
"#,
);

case!(
    alert_names_an_unknown_event,
    4,
    "",
    r#"project "demo"
alert "ops" {
    command "/usr/local/bin/page-me"
    on "unhealthy" "backup-faild"
}
"#,
    has = "invalid alert event `backup-faild`",
);

case!(
    alert_header_secret_is_undeclared,
    4,
    "",
    r#"project "demo"
alert "ops" {
    webhook url="https://hooks.example.com/x" {
        header "Authorization" secret="hook-tokn" prefix="Bearer "
    }
}
"#,
    has = "hook-tokn",
);

case!(
    alert_without_destination,
    2,
    "no `webhook` or `command`",
    r#"project "demo"
alert "ops" {
    on "unhealthy"
}
"#,
);

case!(
    backup_schedule_does_not_parse,
    5,
    "not a schedule",
    r#"project "demo"
volume "data"
backup "nightly" {
    volume "data"
    every "0 3 * *"
}
"#,
);

case!(
    restart_limit_of_zero,
    4,
    "0",
    r#"project "demo"
service "web" {
    image "busybox:1"
    restart-limit 0 within="10m"
}
"#,
);

#[test]
fn errors_found_from_a_subdirectory_point_into_the_manifest() {
    let out = Test::manifest(
        r#"project "demo"
servce "omega"
"#,
    )
    .dir("sub")
    .current_dir("sub")
    .args(&["validate"])
    .run();
    out.code(2).no_panic().label_at(2, "not a sanctuary node");
}

#[test]
fn missing_file_given_with_f() {
    let out = Test::new().args(&["validate", "-f", "nope.kdl"]).run();
    out.code(2).no_panic().stderr_has("nope.kdl");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn no_manifest_anywhere() {
    let t = Test::new();
    // The temporary directory's ancestors must not hold a manifest, or discovery finds it.
    if t.path()
        .ancestors()
        .any(|d| d.join("Sanctuary.kdl").is_file())
    {
        panic!(
            "an ancestor of {} holds a Sanctuary.kdl; this test needs a clean tree",
            t.path().display()
        );
    }
    let out = t.args(&["validate"]).run();
    out.code(2).no_panic().stderr_has("no Sanctuary.kdl found");
    insta::assert_snapshot!(out.stderr);
}

// ---- checks added with the reference review ----

case!(
    single_child_given_twice,
    4,
    "repeated here",
    r#"project "demo"
volume "data" {
    driver "local"
    driver "nfs"
}
"#,
    has = "`driver` is given more than once in `volume`",
);

case!(
    secret_file_path_not_absolute,
    5,
    "must start with `/`",
    r#"project "demo"
secret "key" { env "KEY"; }
service "app" {
    image "busybox:1"
    secret-file "key" path="run/key"
}
"#,
);

case!(
    libsecret_without_attributes,
    2,
    "no attributes",
    r#"project "demo"
secret "key" {
    libsecret
}
"#,
);

case!(
    reference_with_build_args,
    3,
    "external reference",
    r#"project "demo"
image "node" {
    reference "node:20-slim"
    arg VERSION="1"
}
"#,
    has = "both a reference and a build",
);

case!(
    test_waits_healthy_on_service_without_health,
    6,
    "condition=\"healthy\"",
    r#"project "demo"
service "db" {
    image "busybox:1"
}
test "t" {
    depends-on "db" condition="healthy"
    tcp "127.0.0.1:5432"
}
"#,
    has = "test `t` waits for `db` to be healthy",
);

case!(
    secret_file_on_a_host_task,
    5,
    "needs a container to be mounted into",
    r#"project "demo"
secret "tok" { env "TOK"; }
task "deploy" {
    run "cat /run/secrets/tok"
    secret-file "tok"
}
"#,
    has = "task `deploy` has a `secret-file` but no `image`",
);

case!(
    secret_file_on_an_http_test,
    6,
    "needs a container to be mounted into",
    r#"project "demo"
secret "tok" { env "TOK"; }
test "up" {
    http "http://127.0.0.1:8080/"
    needs "web"
    secret-file "tok"
}
service "web" { image "busybox:1"; }
"#,
    has = "test `up` has a `secret-file` but does not run in an image",
);

// ---- blue-green updates ----

case!(
    blue_green_without_health_check,
    4,
    "the switch waits until the new container is healthy",
    r#"project "demo"
service "web" {
    image "busybox:1"
    update "blue-green"
}
"#,
);

case!(
    blue_green_with_udp_port,
    5,
    "held by a TCP proxy",
    r#"project "demo"
service "dns" {
    image "busybox:1"
    port "53/udp"
    update "blue-green"
    health {
        cmd "true"
    }
}
"#,
);

case!(
    unknown_update_strategy,
    4,
    "not a strategy",
    r#"project "demo"
service "web" {
    image "busybox:1"
    update "rolling"
}
"#,
    has = "update \"blue-green\"",
);

case!(
    drain_timeout_without_blue_green,
    2,
    "this service is recreated",
    r#"project "demo"
service "web" {
    image "busybox:1"
    drain-timeout "5s"
}
"#,
);

case!(
    http_check_both_insecure_and_with_a_ca_file,
    3,
    "drop one of the two",
    r#"project "demo"
test "health" {
    http "https://127.0.0.1:8443/" ca-file="ca.pem" insecure=true
}
"#,
);
