//! The gRPC façade: CRI messages in, domain calls, CRI messages out. Only
//! this module knows the generated protobuf types.

pub mod api;
mod convert;
mod image;
mod runtime;
mod status;

pub use image::ImageApi;
pub use runtime::RuntimeApi;
