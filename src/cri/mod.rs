//! The gRPC façade: CRI messages in, domain calls, CRI messages out. Only
//! this module knows the generated protobuf types.

pub mod api;
mod convert;
mod image;
mod runtime;
mod status;

pub use image::ImageApi;

/// How many items one message of a streamed list carries.
const STREAM_BATCH: usize = 100;
pub use runtime::RuntimeApi;
