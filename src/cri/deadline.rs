//! The caller's deadline (`grpc-timeout`) ends a call with DeadlineExceeded.
//!
//! tonic enforces the header itself but answers `Cancelled` when it
//! expires; kubelet and the CRI validation suite expect `DeadlineExceeded`.
//! This layer sits inside tonic's and expires a moment earlier, so the call
//! ends with the right code, and dropping the handler's future cancels the
//! work (a pull, an exec) as before.

use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tower::{Layer, Service};

/// How much earlier than tonic's own timer ours fires.
const HEAD_START: Duration = Duration::from_millis(2);

#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineLayer;

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for Deadline<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let timeout = request.headers().get("grpc-timeout").and_then(|v| parse_timeout(v.to_str().ok()?));
        let response = self.inner.call(request);
        let Some(timeout) = timeout else { return Box::pin(response) };
        Box::pin(async move {
            match tokio::time::timeout(timeout.saturating_sub(HEAD_START), response).await {
                Ok(response) => response,
                Err(_) => Ok(tonic::Status::deadline_exceeded(format!("deadline of {timeout:?} exceeded")).into_http()),
            }
        })
    }
}

/// `grpc-timeout`: at most 8 digits and a unit (H, M, S, m, u, n).
fn parse_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt;

    use super::*;

    #[test]
    fn timeouts_parse_as_grpc_defines_them() {
        assert_eq!(parse_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "S", "123456789S", "5s", "-1S", "1.5S"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    async fn slow(_request: http::Request<()>) -> Result<http::Response<()>, Infallible> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(http::Response::new(()))
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_deadline_is_deadline_exceeded() {
        let request = http::Request::builder().header("grpc-timeout", "100m").body(()).unwrap();
        let response = DeadlineLayer.layer(tower::service_fn(slow)).oneshot(request).await.unwrap();
        let code = response.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(code.as_deref(), Some("4"), "DEADLINE_EXCEEDED");
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_waits_for_the_handler() {
        let request = http::Request::builder().body(()).unwrap();
        let response = DeadlineLayer.layer(tower::service_fn(slow)).oneshot(request).await.unwrap();
        assert!(response.headers().get("grpc-status").is_none());
    }
}
