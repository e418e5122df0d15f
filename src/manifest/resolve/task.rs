//! `task` nodes: lines to run, inputs and outputs, env and secrets, working directory,
//! an optional image to run in, and a timeout.

use super::*;

pub(super) fn resolve_task(r: &mut Resolver, t: &raw::Task) -> Task {
    if t.run.is_empty() {
        r.err(
            Diag::error(format!("task `{}` has nothing to run", &*t.name))
                .label(at(t.name.span()), "no `run`")
                .help("add `run \"command\"`"),
        );
    }
    let depends_on = r.depends_on(&format!("task `{}`", &*t.name), &t.depends_on);
    let secret_env = secret_envs(r, &t.secret_env);
    let image = t
        .image
        .as_ref()
        .and_then(|i| r.image_ref(i, &format!("task `{}`", &*t.name)));
    let secret_files = secret_files(r, &t.secret_file, None, &format!("task `{}`", &*t.name));
    if let (Some(first), None) = (t.secret_file.first(), &image) {
        r.err(
            Diag::error(format!("task `{}` has a `secret-file` but no `image`", &*t.name))
                .label(at(&first.span), "needs a container to be mounted into")
                .help("add `image \"…\"` to run the task in a container, or pass the secret to a host task with `secret-env`"),
        );
    }
    let dir = t
        .dir
        .as_ref()
        .map(|d| r.path(d))
        .unwrap_or_else(|| r.dir.to_path_buf());
    Task {
        name: t.name.to_string(),
        span: span(&t.name),
        description: t.description.clone(),
        run: t.run.iter().map(|l| l.to_string()).collect(),
        inputs: flatten_args(&t.inputs),
        outputs: flatten_args(&t.outputs),
        env: merge_props(&t.env),
        secret_env,
        secret_files,
        depends_on,
        dir,
        image,
        timeout: t.timeout,
    }
}
