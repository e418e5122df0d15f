//! The one integration-test binary. Docker tests share `docker_support`.

mod docker_support;

mod apply_docker;
mod backend_docker;
