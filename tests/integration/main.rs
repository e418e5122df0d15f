//! The one integration-test binary. Docker tests share `docker_support`; tests that run the
//! binary in a temp dir share `support` and `run_support`.

mod docker_support;
mod run_support;
mod support;

mod apply_docker;
mod backend_docker;
mod backup_docker;
mod backup_sftp;
mod blue_green_docker;
mod cli_basics;
mod converge_docker;
mod docs_kdl;
mod events_docker;
mod gitops_docker;
mod https_probes;
mod lifecycle_docker;
mod manifest_errors;
mod manifest_fuzz;
mod mcp_stdio;
mod run_tasks;
mod supervise_docker;
mod sync_docker;
mod test_ci_docker;
mod traces_otlp;
