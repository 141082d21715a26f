//! The CRI log file format kubelet and crictl read:
//! `<RFC 3339 nano timestamp> <stdout|stderr> <F|P> <text>`, one line per chunk.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::log_open::{self, Existing, LogError};
use crate::docker::OutputStream;
use crate::time::parse_rfc3339_nanos;

/// How much of a file's end is read to find its last timestamp.
const TAIL_BYTES: u64 = 64 * 1024;

/// An open CRI log file and the newest entry written to it.
pub struct CriLogFile {
    /// The log directory the file must stay in.
    root: PathBuf,
    path: PathBuf,
    /// Written with one `write` per line from a blocking task, so a line is
    /// on disk (visible to kubelet) as soon as the call returns.
    file: Arc<File>,
    /// Entries up to here were written before this copy began (by an earlier
    /// run); they are skipped when Docker replays them. Later entries are
    /// all written: Docker may deliver stdout and stderr slightly out of
    /// timestamp order, so "older than the last line" is no reason to skip.
    resume_nanos: i64,
    /// Nanoseconds of the newest entry written.
    pub last_nanos: i64,
}

impl CriLogFile {
    /// Opens `path` inside `root` for appending (creating it and its
    /// directory; `existing` says whether a non-empty file is this
    /// container's own); entries up to `known_nanos` or the file's own last
    /// entry count as written.
    pub async fn open(root: &Path, path: &Path, known_nanos: i64, existing: Existing) -> Result<Self, LogError> {
        let (root, path) = (root.to_path_buf(), path.to_path_buf());
        let (opened, root, path) = tokio::task::spawn_blocking(move || {
            let opened = log_open::open(&root, &path, existing).map(|file| (last_timestamp(&path), file));
            (opened, root, path)
        })
        .await
        .map_err(std::io::Error::other)?;
        let (in_file, file) = opened?;
        let resume_nanos = in_file.unwrap_or(0).max(known_nanos);
        Ok(CriLogFile { root, path, file: Arc::new(file), resume_nanos, last_nanos: resume_nanos })
    }

    /// Closes the file and opens `path` afresh: after kubelet renamed the
    /// old file away, new output goes to a new file.
    pub async fn reopen(&mut self) -> Result<(), LogError> {
        let reopened = Self::open(&self.root, &self.path, self.last_nanos, Existing::Append).await?;
        self.file = reopened.file;
        Ok(())
    }

    /// Writes one Docker log entry (`<timestamp> <text>`); returns false
    /// when it was already written before.
    pub async fn write_entry(&mut self, stream: OutputStream, entry: &[u8]) -> std::io::Result<bool> {
        let Some((timestamp, nanos, text)) = split_entry(entry) else { return Ok(false) };
        if nanos <= self.resume_nanos {
            return Ok(false);
        }
        let (file, line) = (self.file.clone(), format_line(timestamp, stream, text));
        tokio::task::spawn_blocking(move || (&*file).write_all(&line)).await.map_err(std::io::Error::other)??;
        self.last_nanos = self.last_nanos.max(nanos);
        Ok(true)
    }

    /// Makes what was written durable.
    pub async fn sync(&mut self) -> std::io::Result<()> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || file.sync_data()).await.map_err(std::io::Error::other)?
    }
}

/// Splits Docker's `<timestamp> <text>` into its parts.
fn split_entry(entry: &[u8]) -> Option<(&str, i64, &[u8])> {
    let space = entry.iter().position(|b| *b == b' ')?;
    let timestamp = std::str::from_utf8(&entry[..space]).ok()?;
    let nanos = parse_rfc3339_nanos(timestamp)?;
    Some((timestamp, nanos, &entry[space + 1..]))
}

/// One CRI line; text without a final newline is a partial (`P`) line.
pub fn format_line(timestamp: &str, stream: OutputStream, text: &[u8]) -> Vec<u8> {
    let (text, tag) = match text.strip_suffix(b"\n") {
        Some(line) => (line, "F"),
        None => (text, "P"),
    };
    let stream = match stream {
        OutputStream::Stdout => "stdout",
        OutputStream::Stderr => "stderr",
    };
    let mut line = Vec::with_capacity(timestamp.len() + text.len() + 12);
    line.extend_from_slice(format!("{timestamp} {stream} {tag} ").as_bytes());
    line.extend_from_slice(text);
    line.push(b'\n');
    line
}

/// The newest timestamp among the last lines of a CRI log file (lines of
/// the two streams are not strictly in timestamp order).
fn last_timestamp(path: &Path) -> Option<i64> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES))).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    tail.split(|b| *b == b'\n').filter_map(|line| split_entry(line).map(|(_, nanos, _)| nanos)).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_full_and_partial_lines() {
        let ts = "2026-01-02T03:04:05.123456789Z";
        assert_eq!(format_line(ts, OutputStream::Stdout, b"hello\n"), format!("{ts} stdout F hello\n").into_bytes());
        assert_eq!(format_line(ts, OutputStream::Stderr, b"half"), format!("{ts} stderr P half\n").into_bytes());
    }

    #[tokio::test]
    async fn skips_what_was_written_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0.log");
        let mut log = CriLogFile::open(dir.path(), &path, 0, Existing::Refuse).await.unwrap();
        assert!(log.write_entry(OutputStream::Stdout, b"2026-01-01T00:00:01Z one\n").await.unwrap());
        assert!(log.write_entry(OutputStream::Stderr, b"2026-01-01T00:00:02Z two\n").await.unwrap());
        // Docker may hand over the other stream's entry a little out of order.
        assert!(log.write_entry(OutputStream::Stdout, b"2026-01-01T00:00:01.5Z between\n").await.unwrap());
        log.sync().await.unwrap();

        // A restart finds where the file ended.
        let mut again = CriLogFile::open(dir.path(), &path, 0, Existing::Append).await.unwrap();
        assert!(!again.write_entry(OutputStream::Stdout, b"2026-01-01T00:00:01Z one\n").await.unwrap());
        assert!(!again.write_entry(OutputStream::Stderr, b"2026-01-01T00:00:02Z two\n").await.unwrap());

        // Rotation: kubelet renames the file away, the writer reopens.
        std::fs::rename(&path, dir.path().join("c/0.log.1")).unwrap();
        again.reopen().await.unwrap();
        assert!(again.write_entry(OutputStream::Stdout, b"2026-01-01T00:00:03Z three\n").await.unwrap());
        again.sync().await.unwrap();
        let fresh = std::fs::read_to_string(&path).unwrap();
        assert_eq!(fresh, "2026-01-01T00:00:03Z stdout F three\n");
        let old = std::fs::read_to_string(dir.path().join("c/0.log.1")).unwrap();
        assert_eq!(old.lines().count(), 3);
    }
}
