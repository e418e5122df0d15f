//! The one integration-test binary. Docker tests share `docker_support`.

mod docker_support;

mod backend_docker;
mod apply_docker;
