//! The gRPC façade: CRI messages in, domain calls, CRI messages out. Only
//! this module implements the generated service traits; the messages are
//! the shared vocabulary in `crate::api`.

pub mod authority;
mod convert;
pub mod deadline;
mod image;
mod runtime;
mod status;

pub use image::ImageApi;

/// How many items one message of a streamed list carries.
const STREAM_BATCH: usize = 100;

type ResponseStream<T> = std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send>>;

/// A list as a stream of messages of at most STREAM_BATCH items each,
/// `wrap` making one message from one batch.
fn batched<T, R>(items: Vec<T>, wrap: impl Fn(Vec<T>) -> R) -> tonic::Response<ResponseStream<R>>
where
    T: Clone,
    R: Send + 'static,
{
    let messages: Vec<_> = items.chunks(STREAM_BATCH).map(|batch| Ok(wrap(batch.to_vec()))).collect();
    tonic::Response::new(Box::pin(futures::stream::iter(messages)))
}
pub use runtime::RuntimeApi;
