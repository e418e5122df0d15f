//! The project's helper image: `FROM scratch` plus the host's static busybox with its applets
//! installed, built once per project and labelled with it. Backups read and write volumes
//! through it and sync reaches into volumes with it, with no image registry involved.

use std::path::PathBuf;

use super::{Backend, ImageBuild};
use crate::backend::names;

const DOCKERFILE: &str = "FROM scratch\nCOPY busybox /bin/busybox\n\
                          RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// The helper image's tag for a project.
pub fn helper_image(project: &str) -> String {
    format!("{project}-sanctuary-helper:latest")
}

/// Builds the helper image unless it exists; returns its tag. The error says what failed.
pub async fn ensure_helper_image(backend: &dyn Backend, project: &str) -> Result<String, String> {
    let tag = helper_image(project);
    if backend
        .inspect_image(&tag)
        .await
        .map_err(|e| format!("inspecting image {tag}: {e}"))?
        .is_some()
    {
        return Ok(tag);
    }
    let dir = tempfile::tempdir().map_err(|e| format!("creating a build context: {e}"))?;
    std::fs::copy("/bin/busybox", dir.path().join("busybox")).map_err(|e| {
        format!("it is made from the host's static /bin/busybox (Debian: busybox-static): {e}")
    })?;
    std::fs::write(dir.path().join("Dockerfile"), DOCKERFILE)
        .map_err(|e| format!("writing the Dockerfile: {e}"))?;
    let build = ImageBuild {
        tag: tag.clone(),
        context_dir: dir.path().to_path_buf(),
        dockerfile: PathBuf::from("Dockerfile"),
        build_args: Default::default(),
        target: None,
        labels: names::labels(project, "sanctuary-helper", None),
        exclude: Vec::new(),
    };
    backend
        .build_image(&build, &|_| {})
        .await
        .map_err(|e| format!("building image {tag}: {e}"))?;
    Ok(tag)
}
