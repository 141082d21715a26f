//! The generated CRI v1 messages, clients and service traits.
#![allow(clippy::all, clippy::pedantic, missing_docs)]

tonic::include_proto!("runtime.v1");
