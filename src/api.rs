//! The generated CRI v1 messages: the vocabulary every layer speaks, at the
//! bottom of the crate. The generated service traits and clients come with
//! them; only `cri/` serves the traits.
#![allow(clippy::all, clippy::pedantic, missing_docs)]

tonic::include_proto!("runtime.v1");
