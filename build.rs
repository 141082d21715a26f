//! Compiles the CRI v1 proto with a pure-Rust protobuf compiler, so a fresh
//! machine needs no system `protoc`; and records the git commit for
//! `--version` and the build-info metric.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

const PROTO_FILES: &[&str] = &["proto/api.proto"];
const INCLUDE_DIRS: &[&str] = &["proto"];
/// Set by builds from a tarball, where there is no git history to ask.
const COMMIT_OVERRIDE: &str = "PINSHIM_GIT_COMMIT";

fn main() -> Result<(), Box<dyn Error>> {
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors =
        protox::compile(PROTO_FILES, INCLUDE_DIRS).map_err(|e| format!("failed to parse {PROTO_FILES:?}: {e}"))?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)
        .map_err(|e| format!("failed to generate code for {PROTO_FILES:?}: {e}"))?;
    println!("cargo:rustc-env=PINSHIM_BUILD_COMMIT={}", commit());
    Ok(())
}

/// The short commit hash: the override, else git's answer, else "unknown".
fn commit() -> String {
    println!("cargo:rerun-if-env-changed={COMMIT_OVERRIDE}");
    if let Some(commit) = std::env::var(COMMIT_OVERRIDE).ok().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()) {
        return commit;
    }
    watch_git_head();
    git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
}

/// Reruns this script when HEAD moves: a checkout rewrites HEAD, a commit
/// rewrites the branch's ref file (or packed-refs, after a `git gc`).
/// Watching only these keeps ordinary edits from rerunning it.
fn watch_git_head() {
    let mut watched = Vec::new();
    watched.extend(git_path("HEAD"));
    watched.extend(git_path("packed-refs"));
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(loose) = git_path(&branch)
    {
        // A branch known only from packed-refs has no file yet; its
        // directory changes when the next commit creates one.
        if loose.exists() {
            watched.push(loose);
        } else {
            watched.extend(loose.parent().map(Path::to_path_buf));
        }
    }
    for path in watched.into_iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// `git rev-parse --git-path`: where a file of the repository (or of this
/// worktree) lives, made absolute.
fn git_path(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(git(&["rev-parse", "--git-path", name])?);
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from)?;
    Some(if path.is_absolute() { path } else { dir.join(path) })
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !text.is_empty()).then_some(text)
}
