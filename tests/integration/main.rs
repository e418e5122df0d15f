//! The one integration-test binary. Docker tests share `docker_support`; tests that run the
//! binary in a temp dir share `support`.

mod docker_support;
mod support;

mod backend_docker;
mod backup_docker;
mod cli_basics;
mod docs_kdl;
mod manifest_errors;
mod manifest_fuzz;
