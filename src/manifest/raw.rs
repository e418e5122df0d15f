//! The raw manifest: KDL nodes decoded by knuffel, exactly as written, with source spans.
//!
//! Single values are checked here (durations, sizes, ports, keywords) so knuffel collects every
//! such error in one pass; references between nodes are checked later, in `resolve`, on the
//! spans kept here.

use std::collections::BTreeMap;

use knuffel::ast::Literal;
use knuffel::decode::Context;
use knuffel::errors::DecodeError;
use knuffel::span::{Span, Spanned};

use super::values::*;

/// A string value with its place in the manifest.
pub type Text = Spanned<String, Span>;
/// Any parsed value with its place in the manifest.
pub type At<T> = Spanned<T, Span>;

/// One top-level node of a manifest.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub enum TopNode {
    Project(Project),
    Secret(Secret),
    Image(Image),
    Volume(Volume),
    Network(Network),
    Service(Service),
    Task(Task),
    Test(Test),
    Backup(Backup),
    Sync(Sync),
    Alert(Alert),
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Project {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(child, unwrap(argument))]
    pub description: Option<String>,
    #[knuffel(child, unwrap(argument))]
    pub state_dir: Option<Text>,
    #[knuffel(child, unwrap(argument))]
    pub keep_generations: Option<At<u64>>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Secret {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(child, unwrap(argument))]
    pub description: Option<String>,
    #[knuffel(child, unwrap(argument))]
    pub env: Option<Text>,
    #[knuffel(child, unwrap(argument))]
    pub file: Option<Text>,
    #[knuffel(child)]
    pub keychain: Option<Keychain>,
    #[knuffel(child)]
    pub libsecret: Option<Libsecret>,
}

/// A macOS Keychain generic password.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Keychain {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(property)]
    pub service: Text,
    #[knuffel(property)]
    pub account: Option<Text>,
}

/// A libsecret (GNOME keyring) item found by its attributes.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Libsecret {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(properties)]
    pub attributes: BTreeMap<String, String>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Image {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(child, unwrap(argument))]
    pub description: Option<String>,
    #[knuffel(child, unwrap(argument))]
    pub context: Option<Text>,
    #[knuffel(child, unwrap(argument))]
    pub dockerfile: Option<Text>,
    #[knuffel(child, unwrap(argument))]
    pub target: Option<String>,
    /// An external image used as is (pulled when not present locally).
    #[knuffel(child, unwrap(argument))]
    pub reference: Option<Text>,
    #[knuffel(children(name = "arg"))]
    pub args: Vec<Properties>,
    #[knuffel(children(name = "depends-on"))]
    pub depends_on: Vec<DependsOn>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Volume {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(child, unwrap(argument))]
    pub description: Option<String>,
    #[knuffel(child, unwrap(argument))]
    pub driver: Option<String>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Network {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(child, unwrap(argument))]
    pub description: Option<String>,
    #[knuffel(child, unwrap(argument))]
    pub driver: Option<String>,
    #[knuffel(child)]
    pub internal: bool,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Service {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(child, unwrap(argument))]
    pub description: Option<String>,
    #[knuffel(child, unwrap(argument))]
    pub image: Option<Text>,
    #[knuffel(child, unwrap(arguments))]
    pub command: Option<Vec<String>>,
    #[knuffel(child, unwrap(arguments))]
    pub entrypoint: Option<Vec<String>>,
    #[knuffel(children(name = "env"))]
    pub env: Vec<Properties>,
    #[knuffel(children(name = "secret-env"))]
    pub secret_env: Vec<SecretEnv>,
    #[knuffel(children(name = "secret-file"))]
    pub secret_file: Vec<SecretFile>,
    #[knuffel(children(name = "port"))]
    pub ports: Vec<Port>,
    #[knuffel(children(name = "mount"))]
    pub mounts: Vec<Mount>,
    #[knuffel(children(name = "bind"))]
    pub binds: Vec<Mount>,
    #[knuffel(children(name = "network"))]
    pub networks: Vec<NetworkRef>,
    #[knuffel(child, unwrap(argument))]
    pub restart: Option<At<Parsed<RestartPolicy>>>,
    #[knuffel(child)]
    pub resources: Option<Resources>,
    #[knuffel(child)]
    pub health: Option<Health>,
    #[knuffel(children(name = "depends-on"))]
    pub depends_on: Vec<DependsOn>,
    #[knuffel(child, unwrap(argument))]
    pub user: Option<String>,
    #[knuffel(child, unwrap(argument))]
    pub workdir: Option<String>,
    #[knuffel(child, unwrap(argument))]
    pub hostname: Option<String>,
    #[knuffel(child, unwrap(argument, str))]
    pub ready_timeout: Option<Duration>,
    #[knuffel(child, unwrap(argument, str))]
    pub stop_timeout: Option<Duration>,
    #[knuffel(children(name = "label"))]
    pub labels: Vec<Properties>,
    #[knuffel(child, unwrap(argument))]
    pub update: Option<Text>,
    #[knuffel(child, unwrap(argument, str))]
    pub drain_timeout: Option<Duration>,
    #[knuffel(child, unwrap(argument))]
    pub keep_previous: Option<bool>,
    #[knuffel(child, unwrap(arguments))]
    pub profile: Option<Vec<String>>,
    #[knuffel(child)]
    pub restart_limit: Option<RestartLimit>,
}

/// `restart-limit 5 within="10m"`: how often the supervisor may restart an unhealthy
/// container before it gives up.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct RestartLimit {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub count: At<u32>,
    #[knuffel(property, str)]
    pub within: Option<Duration>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct SecretEnv {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub var: Text,
    #[knuffel(property)]
    pub from: Text,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct SecretFile {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub secret: Text,
    #[knuffel(property)]
    pub path: Option<String>,
    #[knuffel(property)]
    pub mode: Option<At<Scalar>>,
    #[knuffel(property)]
    pub owner: Option<Text>,
}

/// `port 3000 host=3000 protocol="udp" ip="127.0.0.1"` or `port "8080:80/tcp"`.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Port {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub spec: At<Scalar>,
    #[knuffel(property)]
    pub host: Option<At<u16>>,
    #[knuffel(property, str)]
    pub protocol: Option<Protocol>,
    #[knuffel(property)]
    pub ip: Option<String>,
}

/// `mount "volume" "/path" read-only=true`, `bind "./dir" "/path"`.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Mount {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub source: Text,
    #[knuffel(argument)]
    pub target: Text,
    #[knuffel(property(name = "read-only"), default)]
    pub read_only: bool,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct NetworkRef {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(property)]
    pub alias: Option<String>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Resources {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(property)]
    pub cpus: Option<At<Scalar>>,
    #[knuffel(property, str)]
    pub memory: Option<Size>,
    #[knuffel(property)]
    pub pids: Option<i64>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Health {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(child, unwrap(arguments))]
    pub cmd: Option<Vec<String>>,
    #[knuffel(child, unwrap(argument))]
    pub shell: Option<String>,
    #[knuffel(child, unwrap(argument, str))]
    pub interval: Option<Duration>,
    #[knuffel(child, unwrap(argument, str))]
    pub timeout: Option<Duration>,
    #[knuffel(child, unwrap(argument))]
    pub retries: Option<u32>,
    #[knuffel(child, unwrap(argument, str))]
    pub start_period: Option<Duration>,
}

/// `depends-on "a" "b" condition="healthy"`.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct DependsOn {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(arguments)]
    pub names: Vec<Text>,
    #[knuffel(property)]
    pub condition: Option<At<Parsed<Condition>>>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Task {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(child, unwrap(argument))]
    pub description: Option<String>,
    #[knuffel(children(name = "run"), unwrap(argument))]
    pub run: Vec<Text>,
    #[knuffel(children(name = "inputs"))]
    pub inputs: Vec<Args>,
    #[knuffel(children(name = "outputs"))]
    pub outputs: Vec<Args>,
    #[knuffel(children(name = "env"))]
    pub env: Vec<Properties>,
    #[knuffel(children(name = "secret-env"))]
    pub secret_env: Vec<SecretEnv>,
    #[knuffel(children(name = "secret-file"))]
    pub secret_file: Vec<SecretFile>,
    #[knuffel(children(name = "depends-on"))]
    pub depends_on: Vec<DependsOn>,
    #[knuffel(child, unwrap(argument))]
    pub dir: Option<Text>,
    #[knuffel(child, unwrap(argument))]
    pub image: Option<Text>,
    #[knuffel(child, unwrap(argument, str))]
    pub timeout: Option<Duration>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Test {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(child, unwrap(argument))]
    pub description: Option<String>,
    #[knuffel(child, unwrap(arguments))]
    pub tags: Option<Vec<String>>,
    #[knuffel(children(name = "needs"))]
    pub needs: Vec<Args>,
    #[knuffel(children(name = "depends-on"))]
    pub depends_on: Vec<DependsOn>,
    #[knuffel(children(name = "run"), unwrap(argument))]
    pub run: Vec<Text>,
    #[knuffel(child, unwrap(argument))]
    pub image: Option<Text>,
    #[knuffel(child)]
    pub exec: Option<Exec>,
    #[knuffel(child)]
    pub http: Option<Http>,
    #[knuffel(child)]
    pub tcp: Option<Tcp>,
    #[knuffel(children(name = "inputs"))]
    pub inputs: Vec<Args>,
    #[knuffel(children(name = "env"))]
    pub env: Vec<Properties>,
    #[knuffel(children(name = "secret-file"))]
    pub secret_file: Vec<SecretFile>,
    #[knuffel(child, unwrap(argument, str))]
    pub timeout: Option<Duration>,
}

/// `exec "service" "cmd" "arg"…`.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Exec {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub service: Text,
    #[knuffel(arguments)]
    pub command: Vec<String>,
}

/// `http "http://127.0.0.1:3000/health" status=200 contains="running"`.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Http {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub url: Text,
    #[knuffel(property, str)]
    pub method: Option<HttpMethod>,
    #[knuffel(property)]
    pub status: Option<At<u16>>,
    #[knuffel(property)]
    pub contains: Option<String>,
    #[knuffel(property(name = "json-path"))]
    pub json_path: Option<String>,
    #[knuffel(property)]
    pub equals: Option<At<Scalar>>,
    #[knuffel(property)]
    pub body: Option<String>,
    #[knuffel(property)]
    pub retries: Option<u32>,
    #[knuffel(property, str)]
    pub delay: Option<Duration>,
    #[knuffel(property(name = "ca-file"))]
    pub ca_file: Option<String>,
    #[knuffel(property)]
    pub insecure: Option<At<bool>>,
}

/// `tcp "127.0.0.1:3000"`.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Tcp {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub address: Text,
    #[knuffel(property)]
    pub retries: Option<u32>,
    #[knuffel(property, str)]
    pub delay: Option<Duration>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Backup {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(child, unwrap(argument))]
    pub description: Option<String>,
    #[knuffel(child, unwrap(argument))]
    pub volume: Option<Text>,
    #[knuffel(child, unwrap(argument))]
    pub path: Option<Text>,
    #[knuffel(child)]
    pub quiesce: Option<Quiesce>,
    #[knuffel(child, unwrap(argument))]
    pub level: Option<At<i32>>,
    #[knuffel(children(name = "copy"))]
    pub copies: Vec<Copy>,
    #[knuffel(child)]
    pub keep: Option<Keep>,
    #[knuffel(child, unwrap(argument))]
    pub every: Option<Text>,
    #[knuffel(child, unwrap(argument, str))]
    pub max_age: Option<Duration>,
    #[knuffel(children(name = "depends-on"))]
    pub depends_on: Vec<DependsOn>,
}

/// `quiesce "stop" "omega" "beta"` or `quiesce "exec" "db" pre="…" post="…"`.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Quiesce {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub mode: At<Parsed<QuiesceMode>>,
    #[knuffel(arguments)]
    pub services: Vec<Text>,
    #[knuffel(property)]
    pub pre: Option<String>,
    #[knuffel(property)]
    pub post: Option<String>,
}

/// `copy "usb" path="/mnt/usb" media="usb"` or `copy "offsite" rclone="remote:x" offsite=true`.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Copy {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(property)]
    pub path: Option<Text>,
    #[knuffel(property)]
    pub rclone: Option<Text>,
    #[knuffel(property, str)]
    pub media: Option<Media>,
    #[knuffel(property, default)]
    pub offsite: bool,
}

#[derive(knuffel::Decode, Debug, Default)]
#[knuffel(span_type = Span)]
pub struct Keep {
    #[knuffel(property)]
    pub last: Option<u32>,
    #[knuffel(property)]
    pub hourly: Option<u32>,
    #[knuffel(property)]
    pub daily: Option<u32>,
    #[knuffel(property)]
    pub weekly: Option<u32>,
    #[knuffel(property)]
    pub monthly: Option<u32>,
    #[knuffel(property)]
    pub yearly: Option<u32>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Sync {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(child, unwrap(argument))]
    pub description: Option<String>,
    #[knuffel(child, unwrap(argument))]
    pub host: Option<Text>,
    #[knuffel(child)]
    pub volume: Option<SyncTarget>,
    #[knuffel(child)]
    pub service: Option<SyncTarget>,
    #[knuffel(child, unwrap(argument, str))]
    pub mode: Option<SyncMode>,
    #[knuffel(children(name = "ignore"))]
    pub ignore: Vec<Args>,
    #[knuffel(children(name = "rewrite"))]
    pub rewrites: Vec<Rewrite>,
    #[knuffel(child, unwrap(argument, str))]
    pub conflict: Option<ConflictPolicy>,
    #[knuffel(child, unwrap(argument))]
    pub owner: Option<String>,
    #[knuffel(child, unwrap(argument))]
    pub file_mode: Option<At<Scalar>>,
    #[knuffel(child, unwrap(argument, str))]
    pub quiet_period: Option<Duration>,
    #[knuffel(child, unwrap(argument))]
    pub on_apply: Option<bool>,
    #[knuffel(child, unwrap(argument))]
    pub watch: Option<bool>,
    #[knuffel(children(name = "depends-on"))]
    pub depends_on: Vec<DependsOn>,
}

/// `volume "claude-home" path="/home/node/.claude"` inside a sync rule.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct SyncTarget {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(property)]
    pub path: Option<Text>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Rewrite {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub from: Text,
    #[knuffel(argument)]
    pub to: Text,
}

/// A node whose arguments are a list of strings: `inputs "src/**" "Cargo.toml"`.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Args {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(arguments)]
    pub values: Vec<Text>,
}

/// A node whose properties are a string map: `env A="1" B=2`.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Properties {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(properties)]
    pub values: BTreeMap<String, At<Scalar>>,
}

/// Any KDL scalar (string, number or boolean), kept as text: `env PORT=3000` is as good as
/// `env PORT="3000"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub text: String,
    pub is_string: bool,
}

impl knuffel::DecodeScalar<Span> for Scalar {
    fn type_check(
        _type_name: &Option<Spanned<knuffel::ast::TypeName, Span>>,
        _ctx: &mut Context<Span>,
    ) {
    }

    fn raw_decode(
        value: &Spanned<Literal, Span>,
        _ctx: &mut Context<Span>,
    ) -> Result<Self, DecodeError<Span>> {
        let (text, is_string) = match &**value {
            Literal::String(s) => (s.to_string(), true),
            Literal::Int(i) => (
                i64::try_from(i)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|_| format!("{i:?}")),
                false,
            ),
            Literal::Decimal(d) => (
                f64::try_from(d).map(|v| v.to_string()).unwrap_or_default(),
                false,
            ),
            Literal::Bool(b) => (b.to_string(), false),
            Literal::Null => {
                return Err(DecodeError::scalar_kind(
                    knuffel::decode::Kind::String,
                    value,
                ));
            }
        };
        Ok(Scalar { text, is_string })
    }
}

/// A string parsed with `FromStr` whose span is kept (knuffel's `str` mode drops it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parsed<T>(pub T);

impl<T> std::ops::Deref for Parsed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: std::str::FromStr<Err = String>> knuffel::DecodeScalar<Span> for Parsed<T> {
    fn type_check(
        _type_name: &Option<Spanned<knuffel::ast::TypeName, Span>>,
        _ctx: &mut Context<Span>,
    ) {
    }

    fn raw_decode(
        value: &Spanned<Literal, Span>,
        _ctx: &mut Context<Span>,
    ) -> Result<Self, DecodeError<Span>> {
        match &**value {
            Literal::String(s) => s
                .parse()
                .map(Parsed)
                .map_err(|e: String| DecodeError::conversion(value, e)),
            _ => Err(DecodeError::scalar_kind(
                knuffel::decode::Kind::String,
                value,
            )),
        }
    }
}

/// `alert "ops" { webhook url="…"; on "unhealthy" "backup-failed" }`.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Alert {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(child, unwrap(argument))]
    pub description: Option<String>,
    #[knuffel(child)]
    pub webhook: Option<Webhook>,
    #[knuffel(child)]
    pub command: Option<AlertCommand>,
    #[knuffel(child)]
    pub on: Option<AlertOn>,
    #[knuffel(child, unwrap(argument, str))]
    pub timeout: Option<Duration>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Webhook {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(property)]
    pub url: Option<Text>,
    #[knuffel(children(name = "header"))]
    pub headers: Vec<Header>,
}

/// `header "X-Token" "literal"` or `header "Authorization" secret="hook" prefix="Bearer "`.
#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct Header {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(argument)]
    pub name: Text,
    #[knuffel(argument)]
    pub value: Option<String>,
    #[knuffel(property)]
    pub secret: Option<Text>,
    #[knuffel(property)]
    pub prefix: Option<String>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct AlertCommand {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(arguments)]
    pub argv: Vec<String>,
}

#[derive(knuffel::Decode, Debug)]
#[knuffel(span_type = Span)]
pub struct AlertOn {
    #[knuffel(span)]
    pub span: Span,
    #[knuffel(arguments)]
    pub events: Vec<Parsed<AlertEvent>>,
}
