//! Typed scalar values of the manifest language: durations, sizes, cpus, port specs, restart
//! policies. Each parses from the text a user writes (`"30s"`, `"2g"`, `"8080:80/tcp"`) and
//! says in its error what a valid value looks like, so knuffel can attach it to the span.

use std::fmt;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Serialize};

/// A duration written as `"30s"`, `"1m30s"`, `"500ms"`, `"2h"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Duration(pub StdDuration);

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() || !t.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!(
                "invalid duration `{s}`: expected a number with a unit, like \"30s\", \"500ms\", \"1m30s\""
            ));
        }
        // A bare number is ambiguous (seconds? milliseconds?): require a unit.
        if t.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "invalid duration `{s}`: a unit is required, e.g. \"{t}s\" or \"{t}ms\""
            ));
        }
        humantime::parse_duration(t).map(Duration).map_err(|e| {
            format!("invalid duration `{s}`: {e}; expected e.g. \"30s\", \"500ms\", \"1m30s\"")
        })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A byte size written the Docker way: `"512m"`, `"2g"`, `"1.5GiB"`, `"1024"` (bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("invalid size `{s}`: expected a number with an optional unit b, k, m, g or t, like \"512m\" or \"2g\"")
        };
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        if num.is_empty() {
            return Err(bad());
        }
        let value: f64 = num.parse().map_err(|_| bad())?;
        // Docker treats k/m/g as binary multiples; so do we, with or without "b"/"ib".
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            _ => return Err(bad()),
        };
        let bytes = value * mult as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(Size(bytes.round() as u64))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("t", 1 << 40),
            ("g", 1 << 30),
            ("m", 1 << 20),
            ("k", 1 << 10),
        ];
        for (unit, mult) in UNITS {
            if self.0 >= mult && self.0 % mult == 0 {
                return write!(f, "{}{unit}", self.0 / mult);
            }
        }
        write!(f, "{}b", self.0)
    }
}

/// A CPU limit: a positive decimal number of CPUs (`1.5`), at most 1024.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct Cpus(pub f64);

impl Cpus {
    pub fn from_number(v: f64) -> Result<Self, String> {
        if v.is_finite() && v > 0.0 && v <= 1024.0 {
            Ok(Cpus(v))
        } else {
            Err(format!(
                "invalid cpus `{v}`: expected a positive number of CPUs such as 0.5 or 2"
            ))
        }
    }

    /// Docker's unit for the limit: billionths of a CPU.
    pub fn nano_cpus(self) -> i64 {
        (self.0 * 1e9).round() as i64
    }
}

impl FromStr for Cpus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v: f64 = s.trim().parse().map_err(|_| {
            format!("invalid cpus `{s}`: expected a positive number of CPUs such as 0.5 or 2")
        })?;
        Cpus::from_number(v)
    }
}

/// Transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(format!(
                "invalid protocol `{s}`: expected \"tcp\" or \"udp\""
            )),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A published port in Docker's short syntax: `"8080:80"`, `"127.0.0.1:8080:80/udp"`, `"80"`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    pub host_ip: Option<String>,
    pub host: Option<u16>,
    pub container: u16,
    pub protocol: Protocol,
}

impl FromStr for PortSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!("invalid port spec `{s}`: {why}; expected \"CONTAINER\", \"HOST:CONTAINER\" or \"IP:HOST:CONTAINER\", optionally with \"/tcp\" or \"/udp\"")
        };
        let (addr, protocol) = match s.rsplit_once('/') {
            Some((a, p)) => (a, p.parse::<Protocol>().map_err(|e| bad(&e))?),
            None => (s, Protocol::Tcp),
        };
        let port = |p: &str| -> Result<u16, String> {
            match p.parse::<u16>() {
                Ok(0) => Err(bad("port 0 is not allowed")),
                Ok(n) => Ok(n),
                Err(_) => Err(bad(&format!("`{p}` is not a port number (1-65535)"))),
            }
        };
        let parts: Vec<&str> = addr.rsplitn(3, ':').collect();
        match parts.as_slice() {
            [c] => Ok(PortSpec {
                host_ip: None,
                host: None,
                container: port(c)?,
                protocol,
            }),
            [c, h] => Ok(PortSpec {
                host_ip: None,
                host: Some(port(h)?),
                container: port(c)?,
                protocol,
            }),
            [c, h, ip] => {
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                ip.parse::<std::net::IpAddr>()
                    .map_err(|_| bad(&format!("`{ip}` is not an IP address")))?;
                Ok(PortSpec {
                    host_ip: Some(ip.to_string()),
                    host: Some(port(h)?),
                    container: port(c)?,
                    protocol,
                })
            }
            _ => Err(bad("too many parts")),
        }
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = &self.host_ip {
            write!(f, "{ip}:")?;
        }
        if let Some(h) = self.host {
            write!(f, "{h}:")?;
        }
        write!(f, "{}/{}", self.container, self.protocol)
    }
}

/// A container restart policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", tag = "policy", content = "max_retries")]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    UnlessStopped,
    OnFailure(Option<u32>),
}

impl FromStr for RestartPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("invalid restart policy `{s}`: expected \"no\", \"always\", \"unless-stopped\", \"on-failure\" or \"on-failure:N\"")
        };
        match s {
            "no" => Ok(RestartPolicy::No),
            "always" => Ok(RestartPolicy::Always),
            "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
            "on-failure" => Ok(RestartPolicy::OnFailure(None)),
            _ => match s.strip_prefix("on-failure:") {
                Some(n) => n
                    .parse()
                    .map(|n| RestartPolicy::OnFailure(Some(n)))
                    .map_err(|_| bad()),
                None => Err(bad()),
            },
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
            RestartPolicy::OnFailure(None) => f.write_str("on-failure"),
            RestartPolicy::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
        }
    }
}

/// Declares a `FromStr` enum over fixed keywords with a helpful error listing the choices.
macro_rules! keyword_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($variant:ident = $kw:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { $($variant),+ }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($kw => Ok($name::$variant),)+
                    _ => Err(format!(
                        concat!("invalid ", $what, " `{}`: expected one of {}"),
                        s,
                        [$(concat!("\"", $kw, "\"")),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($name::$variant => $kw),+ })
            }
        }
    };
}

keyword_enum!(
    /// What a dependent waits for before it starts.
    Condition, "condition" {
        Started = "started",
        Healthy = "healthy",
        Completed = "completed",
    }
);

keyword_enum!(
    /// What an `alert` is told about (see docs/operating.md).
    AlertEvent, "alert event" {
        Unhealthy = "unhealthy",
        RestartLimit = "restart-limit",
        ApplyFailed = "apply-failed",
        RolledBack = "rolled-back",
        BackupFailed = "backup-failed",
        BackupStale = "backup-stale",
        SyncConflict = "sync-conflict",
        EngineLost = "engine-lost",
    }
);

impl AlertEvent {
    pub const ALL: [AlertEvent; 8] = [
        AlertEvent::Unhealthy,
        AlertEvent::RestartLimit,
        AlertEvent::ApplyFailed,
        AlertEvent::RolledBack,
        AlertEvent::BackupFailed,
        AlertEvent::BackupStale,
        AlertEvent::SyncConflict,
        AlertEvent::EngineLost,
    ];
}

keyword_enum!(
    /// Direction of a sync rule.
    SyncMode, "sync mode" {
        TwoWay = "two-way",
        ToContainer = "to-container",
        ToHost = "to-host",
    }
);

keyword_enum!(
    /// What a sync does when both sides changed a path differently.
    ConflictPolicy, "conflict policy" {
        Fail = "fail",
        PreferHost = "prefer-host",
        PreferContainer = "prefer-container",
        KeepBoth = "keep-both",
    }
);

keyword_enum!(
    /// How a backup keeps writers from changing the source while it is read.
    QuiesceMode, "quiesce mode" {
        Stop = "stop",
        Pause = "pause",
        Exec = "exec",
        None = "none",
    }
);

keyword_enum!(
    /// The storage medium of a backup copy, for the 3-2-1 check.
    Media, "medium" {
        Disk = "disk",
        Usb = "usb",
        Nas = "nas",
        Cloud = "cloud",
        Tape = "tape",
    }
);

keyword_enum!(
    /// HTTP method of a test probe.
    HttpMethod, "HTTP method" {
        Get = "GET",
        Head = "HEAD",
        Post = "POST",
        Put = "PUT",
        Delete = "DELETE",
        Patch = "PATCH",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            "30s".parse::<Duration>().unwrap().0,
            StdDuration::from_secs(30)
        );
        assert_eq!(
            "1m30s".parse::<Duration>().unwrap().0,
            StdDuration::from_secs(90)
        );
        assert_eq!(
            "500ms".parse::<Duration>().unwrap().0,
            StdDuration::from_millis(500)
        );
        for bad in ["", "30", "abc", "-1s", "30 parsecs", "s30"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!("512m".parse::<Size>().unwrap().0, 512 << 20);
        assert_eq!("2g".parse::<Size>().unwrap().0, 2 << 30);
        assert_eq!("2GiB".parse::<Size>().unwrap().0, 2 << 30);
        assert_eq!("1.5k".parse::<Size>().unwrap().0, 1536);
        assert_eq!("1024".parse::<Size>().unwrap().0, 1024);
        assert_eq!(Size(512 << 20).to_string(), "512m");
        for bad in ["", "g", "2x", "1.2.3m", "-5m"] {
            assert!(bad.parse::<Size>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn ports() {
        let p: PortSpec = "8080:80/tcp".parse().unwrap();
        assert_eq!(
            (p.host, p.container, p.protocol),
            (Some(8080), 80, Protocol::Tcp)
        );
        let p: PortSpec = "127.0.0.1:53:53/udp".parse().unwrap();
        assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p.protocol, Protocol::Udp);
        let p: PortSpec = "80".parse().unwrap();
        assert_eq!((p.host, p.container), (None, 80));
        for bad in [
            "",
            "http",
            "8080:80/sctp",
            "70000:80",
            "0:80",
            "a.b:1:2",
            "1:2:3:4",
        ] {
            assert!(bad.parse::<PortSpec>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn cpus_and_restart() {
        assert_eq!("1.5".parse::<Cpus>().unwrap().nano_cpus(), 1_500_000_000);
        assert!("0".parse::<Cpus>().is_err());
        assert!("lots".parse::<Cpus>().is_err());
        assert_eq!(
            "on-failure:3".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::OnFailure(Some(3))
        );
        assert_eq!(
            "unless-stopped"
                .parse::<RestartPolicy>()
                .unwrap()
                .to_string(),
            "unless-stopped"
        );
        assert!("sometimes".parse::<RestartPolicy>().is_err());
        assert!("healthy".parse::<Condition>().is_ok());
        assert!("ready"
            .parse::<Condition>()
            .unwrap_err()
            .contains("\"healthy\""));
    }
}
