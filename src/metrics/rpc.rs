//! A tower layer on the gRPC server that counts and times every CRI call,
//! labelled by method (the last segment of the gRPC path).
//!
//! A call is recorded when its response headers leave. A failed unary call
//! is a trailers-only response, so its `grpc-status` is in those headers;
//! no status there means success, or for a streaming call that the stream
//! started: an error a stream ends with later, in its trailers, is not
//! counted, and its duration is the time to its first response.
//!
//! The method label is the request path as sent. The CRI socket is for
//! kubelet and administrators only (mode 0660), so the names stay those of
//! the CRI, plus any unknown method a client tries (answered Unimplemented).

use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use tonic::Code;
use tower::{Layer, Service};

#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for RpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_name(request.uri().path()).to_string();
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            let code = match &response {
                Ok(response) => status_in(response.headers()),
                Err(_) => Code::Unknown,
            };
            super::record_rpc(&method, code, started.elapsed());
            response
        })
    }
}

/// `/runtime.v1.RuntimeService/Version` → `Version`.
fn method_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn status_in(headers: &http::HeaderMap) -> Code {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok()?.parse::<i32>().ok())
        .map(Code::from_i32)
        .unwrap_or(Code::Ok)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt;

    use super::*;
    use crate::metrics::render;
    use crate::metrics::tests::sample;

    #[tokio::test]
    async fn calls_are_counted_by_method_and_errors_by_code() {
        let service = RpcMetricsLayer.layer(tower::service_fn(|request: http::Request<()>| async move {
            let mut response = http::Response::new(());
            if request.uri().path().ends_with("/RpcTestMissing") {
                response.headers_mut().insert("grpc-status", http::HeaderValue::from_static("5"));
            }
            Ok::<_, Infallible>(response)
        }));
        for path in ["/runtime.v1.RuntimeService/RpcTestOk", "/runtime.v1.RuntimeService/RpcTestMissing"] {
            let request = http::Request::builder().uri(path).body(()).unwrap();
            service.clone().oneshot(request).await.unwrap();
        }
        let text = render();
        assert_eq!(sample(&text, r#"pinshim_cri_requests_total{method="RpcTestOk"}"#), Some(1.0));
        assert_eq!(sample(&text, r#"pinshim_cri_requests_total{method="RpcTestMissing"}"#), Some(1.0));
        assert_eq!(
            sample(&text, r#"pinshim_cri_request_errors_total{method="RpcTestMissing",code="NotFound"}"#),
            Some(1.0)
        );
        assert_eq!(sample(&text, r#"pinshim_cri_request_errors_total{method="RpcTestOk""#), None);
        assert_eq!(sample(&text, r#"pinshim_cri_request_duration_seconds_count{method="RpcTestOk"}"#), Some(1.0));
    }
}
