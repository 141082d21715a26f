//! pinshim: a Kubernetes CRI v1 runtime for Docker Engine that pins every
//! image by digest and reports both Docker's image ID and the registry's
//! immutable reference for every container.

pub mod api;
pub mod audit;
pub mod build_info;
pub mod cgroup;
pub mod config;
pub mod container;
pub mod cri;
pub mod disk_usage;
pub mod docker;
pub mod fault;
pub mod host;
pub mod host_mounts;
pub mod image;
pub mod index;
pub mod labels;
pub mod metrics;
pub mod mountinfo;
pub mod network;
pub mod observability;
pub mod random;
pub mod registry;
pub mod resources;
pub mod runtime;
pub mod sandbox;
pub mod security_opt;
pub mod server;
pub mod stats;
pub mod stream;
pub mod systemd;
pub mod time;
pub mod unsupported;
pub mod validate;
