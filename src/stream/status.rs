//! The final message of a remote command: a Kubernetes `metav1.Status`
//! on the error stream, carrying the exit code the way clients decode it.

use serde_json::json;

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Exited(i64),
    Failed(String),
}

/// The error-stream payload for the v4+ protocols.
pub fn status_json(outcome: &Outcome) -> Vec<u8> {
    let status = match outcome {
        Outcome::Exited(0) => json!({ "metadata": {}, "status": "Success" }),
        Outcome::Exited(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": { "causes": [ { "reason": "ExitCode", "message": code.to_string() } ] },
        }),
        Outcome::Failed(message) => json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
        }),
    };
    status.to_string().into_bytes()
}

/// The error-stream payload for the pre-v4 protocols: plain text, empty on success.
pub fn status_text(outcome: &Outcome) -> Vec<u8> {
    match outcome {
        Outcome::Exited(0) => Vec::new(),
        Outcome::Exited(code) => format!("command terminated with non-zero exit code: exit status {code}").into_bytes(),
        Outcome::Failed(message) => message.clone().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_travel_as_causes() {
        let v: serde_json::Value = serde_json::from_slice(&status_json(&Outcome::Exited(3))).unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        let ok: serde_json::Value = serde_json::from_slice(&status_json(&Outcome::Exited(0))).unwrap();
        assert_eq!(ok["status"], "Success");
        assert!(status_text(&Outcome::Exited(0)).is_empty());
    }
}
