//! Images: references, tag → digest resolution, credentials, pull by
//! digest, and the image views the CRI reports.

mod credentials;
mod error;
mod fs_usage;
mod records;
pub mod reference;
mod registry;
mod service;
mod single_flight;

pub use credentials::{AuthFields, Credentials};
pub use error::ImageError;
pub use fs_usage::FsUsage;
pub use reference::{ImageReference, ReferenceError};
pub use service::{ImageConfig, ImageService, ImageStatus, ImageView, Pulled};
