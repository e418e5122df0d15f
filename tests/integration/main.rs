//! The one integration-test binary. Docker tests share `docker_support`; task-runner tests
//! share `run_support`.

mod docker_support;
mod run_support;

mod backend_docker;
mod run_tasks;
