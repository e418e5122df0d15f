//! The proxy's image, built on the engine from the running binary: `FROM scratch` with the
//! sanctuary executable (stripped of debug information when `strip` is at hand) and the
//! shared libraries `ldd` says it links, each at its own path, dynamic loader included. No
//! registry is involved, so it works offline; the tag follows the binary, so a new sanctuary
//! gets a new proxy image and the same one is built once.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::backend::{names, Backend, ImageBuild};

const DOCKERFILE: &str = "FROM scratch\nCOPY . /\nENTRYPOINT [\"/sanctuary\"]\n";

/// Serialises builds of the image within one process: two blue-green services replaced in
/// one walk need it once.
static BUILDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The tag of the proxy image for this binary: `<project>-sanctuary-proxy:<key>`, where the
/// key follows the executable's identity (inode, size, modification time) — hashing hundreds
/// of megabytes at every apply would cost more than the apply.
fn tag(project: &str, exe: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(exe)?;
    let id = format!(
        "{}:{}:{}:{}",
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime_nsec() + meta.mtime() * 1_000_000_000
    );
    let key = crate::plan::desired::sha256_hex(id.as_bytes());
    Ok(format!("{project}-sanctuary-proxy:{}", &key[..12]))
}

/// The libraries `ldd` lists for `exe` (absolute paths), the loader among them; none for a
/// static binary or where `ldd` is missing.
fn linked(exe: &Path) -> Vec<PathBuf> {
    let Ok(out) = Command::new("ldd").arg(exe).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux… (0x…)`
            let path = match l.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Writes the build context into `dir`.
fn context(exe: &Path, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bin = dir.join("sanctuary");
    let stripped = Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&bin)
        .arg(exe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !stripped {
        std::fs::copy(exe, &bin)?;
    }
    for lib in linked(exe) {
        let to = dir.join(lib.strip_prefix("/").unwrap_or(&lib));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&lib, &to)?;
    }
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE)
}

/// Makes sure the proxy image for the running binary exists on the engine; returns its tag.
pub async fn ensure(
    backend: &dyn Backend,
    project: &str,
    state_dir: &Path,
) -> Result<String, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the running sanctuary binary: {e}"))?;
    let tag = tag(project, &exe).map_err(|e| format!("cannot read {}: {e}", exe.display()))?;
    let _one = BUILDING.lock().await;
    if backend
        .inspect_image(&tag)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(tag);
    }
    // Named as debris of this process, so a killed build's context is swept.
    let dir = state_dir.join(format!("proxy-image{}context", crate::debris::own_prefix()));
    let _ = std::fs::remove_dir_all(&dir);
    let made = context(&exe, &dir).map_err(|e| {
        format!(
            "cannot write the proxy image's context in {}: {e}",
            dir.display()
        )
    });
    let built = match made {
        Ok(()) => {
            let build = ImageBuild {
                tag: tag.clone(),
                context_dir: dir.clone(),
                dockerfile: PathBuf::from("Dockerfile"),
                build_args: BTreeMap::new(),
                target: None,
                labels: names::labels(project, "proxy", None),
                exclude: Vec::new(),
            };
            backend
                .build_image(&build, &|_| {})
                .await
                .map(|_| ())
                .map_err(|e| format!("building the proxy image {tag}: {e}"))
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&dir);
    built.map(|()| tag)
}
