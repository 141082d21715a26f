//! Helpers for pod and container tests (sandbox and container configs).
