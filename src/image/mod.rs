//! Images: references, tag → digest resolution, credentials, pull by
//! digest, and the image views the CRI reports.

mod audit_log;
mod credentials;
mod docker_trust;
mod endpoints;
mod error;
pub mod hosts;
pub mod policy;
mod records;
pub mod reference;
mod service;
mod single_flight;

pub use crate::disk_usage::FsUsage;
pub use credentials::{AuthFields, Credentials};
pub use error::ImageError;
pub use reference::{ImageReference, ReferenceError};
pub use service::{ImageConfig, ImageService, ImageStatus, ImageView, Pulled, StoreView};
