//! Images: references, tag → digest resolution, credentials, pull by
//! digest, and the image views the CRI reports.

mod audit_log;
mod credentials;
pub mod distribution;
mod docker_trust;
mod error;
pub mod hosts;
pub mod policy;
mod records;
pub mod reference;
mod registry;
mod service;
mod single_flight;

pub use crate::disk_usage::FsUsage;
pub use credentials::{AuthFields, Credentials};
pub use error::ImageError;
pub use reference::{ImageReference, ReferenceError};
pub use service::{ImageConfig, ImageService, ImageStatus, ImageView, Pulled, StoreView};
