//! Pressure stall information: the `cpu.pressure`, `memory.pressure` and
//! `io.pressure` files a cgroup has in the unified hierarchy (also on hybrid
//! hosts, where the v2 mount carries no controllers but still accounts stalls).

use std::io;
use std::path::Path;

/// One `some` or `full` line: stall percentages over 10, 60 and 300 s, and
/// the cumulative stall time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stall {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// The kernel counts microseconds; the CRI wants nanoseconds.
    pub total_ns: u64,
}

/// One resource's file. `full` is absent where the kernel has no such line
/// (cpu before 5.13).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    pub some: Stall,
    pub full: Option<Stall>,
}

/// The three resources of one cgroup, each `None` where its file is missing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CgroupPressure {
    pub cpu: Option<Pressure>,
    pub memory: Option<Pressure>,
    pub io: Option<Pressure>,
}

/// Reads the pressure files of the unified-hierarchy directory `dir`. Stall
/// figures are extras: a file that is missing or cannot be read (a kernel
/// booted with `psi=0` keeps the files and fails the read with EOPNOTSUPP)
/// leaves its figure `None` instead of failing the usage it comes with.
pub fn read(dir: &Path) -> CgroupPressure {
    let one = |name: &str| match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::debug!(file = %dir.join(name).display(), error = %e, "no pressure figures");
            None
        }
    };
    CgroupPressure { cpu: one("cpu.pressure"), memory: one("memory.pressure"), io: one("io.pressure") }
}

/// Parses a pressure file; `None` when it has no well-formed `some` line.
pub fn parse(text: &str) -> Option<Pressure> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let slot = match fields.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        *slot = parse_stall(fields);
    }
    Some(Pressure { some: some?, full })
}

fn parse_stall<'a>(fields: impl Iterator<Item = &'a str>) -> Option<Stall> {
    let (mut avg10, mut avg60, mut avg300, mut total_us) = (None, None, None, None);
    for field in fields {
        match field.split_once('=')? {
            ("avg10", v) => avg10 = v.parse().ok(),
            ("avg60", v) => avg60 = v.parse().ok(),
            ("avg300", v) => avg300 = v.parse().ok(),
            ("total", v) => total_us = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    Some(Stall { avg10: avg10?, avg60: avg60?, avg300: avg300?, total_ns: total_us?.checked_mul(1000)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn some_and_full_lines_become_stalls_in_nanoseconds() {
        let text = "some avg10=20.12 avg60=8.58 avg300=12.10 total=4522186708\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        let p = parse(text).unwrap();
        assert_eq!(p.some, Stall { avg10: 20.12, avg60: 8.58, avg300: 12.10, total_ns: 4_522_186_708_000 });
        assert_eq!(p.full, Some(Stall::default()));
    }

    #[test]
    fn a_file_without_full_or_with_garbage_is_read_as_far_as_it_goes() {
        let p = parse("some avg10=1.00 avg60=2.00 avg300=3.00 total=7\n").unwrap();
        assert_eq!(p.full, None);
        assert_eq!(p.some.total_ns, 7000);
        assert_eq!(parse("full avg10=1.00 avg60=2.00 avg300=3.00 total=7\n"), None, "no some line");
        assert_eq!(parse("some avg10=x avg60=2.00 avg300=3.00 total=7\n"), None);
    }

    #[test]
    fn missing_files_are_none_and_present_ones_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("io.pressure"), "some avg10=0.50 avg60=0.25 avg300=0.10 total=12\n").unwrap();
        let read = read(dir.path());
        assert_eq!((read.cpu, read.memory), (None, None));
        assert_eq!(read.io.unwrap().some.avg10, 0.5);
    }

    #[test]
    fn an_unreadable_file_is_none_and_the_others_still_read() {
        let dir = tempfile::tempdir().unwrap();
        // Reading a directory fails with an error other than NotFound, as a
        // psi=0 kernel's EOPNOTSUPP does.
        std::fs::create_dir(dir.path().join("cpu.pressure")).unwrap();
        std::fs::write(dir.path().join("memory.pressure"), "some avg10=1.00 avg60=0 avg300=0 total=3\n").unwrap();
        let read = read(dir.path());
        assert_eq!(read.cpu, None);
        assert_eq!(read.memory.unwrap().some.total_ns, 3000);
    }
}
