//! Per-interface network counters of a process's network namespace, read from /proc/<pid>/net/dev.

use std::fs;
use std::io;

/// Counters of one network interface, as kubelet reports them in `NetworkStats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    /// Interface name, e.g. `eth0`.
    pub name: String,
    /// Cumulative bytes received.
    pub rx_bytes: u64,
    /// Cumulative receive errors.
    pub rx_errors: u64,
    /// Cumulative bytes transmitted.
    pub tx_bytes: u64,
    /// Cumulative transmit errors.
    pub tx_errors: u64,
}

/// Parses /proc/<pid>/net/dev: the counters of that process's network namespace (so the pod infra process's file
/// gives the pod's traffic, no setns needed). Skips `lo`.
pub fn read(pid: i64) -> io::Result<Vec<InterfaceStats>> {
    let path = format!("/proc/{pid}/net/dev");
    let text =
        fs::read_to_string(&path).map_err(|e| io::Error::new(e.kind(), format!("failed to read {path}: {e}")))?;
    Ok(parse(&text))
}

/// Parses net/dev text; header lines, `lo` and lines that are not an interface with 16 counters are skipped.
pub fn parse(text: &str) -> Vec<InterfaceStats> {
    text.lines().filter_map(parse_line).filter(|i| i.name != "lo").collect()
}

/// One "name: rx(8 counters) tx(8 counters)" line; long names can touch the first number ("veth1234:5678").
fn parse_line(line: &str) -> Option<InterfaceStats> {
    let (name, counters) = line.split_once(':')?;
    let counters: Vec<u64> = counters.split_whitespace().map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let [rx_bytes, _, rx_errors, _, _, _, _, _, tx_bytes, _, tx_errors, _, _, _, _, _] = counters[..] else {
        return None;
    };
    Some(InterfaceStats { name: name.trim().to_string(), rx_bytes, rx_errors, tx_bytes, tx_errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, rx_bytes: u64, rx_errors: u64, tx_bytes: u64, tx_errors: u64) -> InterfaceStats {
        InterfaceStats { name: name.to_string(), rx_bytes, rx_errors, tx_bytes, tx_errors }
    }

    #[test]
    fn parses_real_format_and_skips_lo() {
        let stats = parse(include_str!("testdata/net-dev"));
        assert_eq!(stats, vec![iface("eth0", 380_142_813, 3, 865_657, 5), iface("verylongname0", 1234, 0, 5678, 1)]);
    }

    #[test]
    fn odd_lines_are_skipped() {
        let text =
            "eth0: 1 2 3\neth1: a b c d e f g h i j k l m n o p\n:\n\neth2: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        assert_eq!(parse(text), vec![iface("eth2", 1, 3, 9, 11)]);
    }

    #[test]
    fn reads_own_namespace() {
        let stats = read(std::process::id().into()).unwrap();
        assert!(stats.iter().all(|i| i.name != "lo"));
        assert!(read(-1).unwrap_err().to_string().contains("/proc/-1/net/dev"));
    }
}
