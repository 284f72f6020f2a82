//! What an address is: a process's `id@host:port`, libprocess's `UPID`.
//!
//! A [`Upid`] names one process on one node. It is cloned on every message (as the sender), so it
//! is a reference-counted immutable value whose text form is computed once.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest process id accepted, in bytes: ids travel in every frame and URL.
pub const MAX_ID_BYTES: usize = 256;
/// The longest host name accepted (RFC 1035's limit).
pub const MAX_HOST_BYTES: usize = 253;

/// Why a text is not a valid `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpidError {
    /// The text before `@` is empty.
    #[error("empty process id in {0:?}")]
    EmptyId(String),
    /// The id holds a character that cannot appear in a URL path segment or a UPID.
    #[error("invalid process id {0:?}: ids are 1..=256 bytes without '@', '/', '?', '#', '%', whitespace or control characters")]
    InvalidId(String),
    /// There is no `@` between id and address.
    #[error("missing '@' in {0:?}: expected id@host:port")]
    MissingAt(String),
    /// There is no `:` before the port.
    #[error("missing ':' before the port in {0:?}: expected id@host:port")]
    MissingColon(String),
    /// The port is not a number in 1..=65535.
    #[error("bad port {port:?} in {text:?}: expected a number in 1..=65535")]
    BadPort {
        /// The whole text.
        text: String,
        /// The port part.
        port: String,
    },
    /// The port is zero, which names no listening socket.
    #[error("port 0 in {0:?}: a UPID names a listening socket, so its port is 1..=65535")]
    ZeroPort(String),
    /// The host is neither an IP address nor a valid DNS name.
    #[error("invalid host {host:?} in {text:?}: expected an IPv4 address, [IPv6] or a DNS name")]
    InvalidHost {
        /// The whole text.
        text: String,
        /// The host part.
        host: String,
    },
}

/// The host part of a [`Upid`]: an IP address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A literal IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A DNS name, resolved when a connection is made.
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

#[derive(Debug)]
struct Inner {
    id: String,
    host: Host,
    port: u16,
    /// `id@host:port`, computed once: it is written into every remote frame.
    text: String,
    /// Byte offset of `@` in `text`, so that `address()` needs no allocation.
    at: usize,
}

/// A process address, `id@host:port` (libprocess's `UPID`).
///
/// ```
/// use libactor::Upid;
/// let pid: Upid = "slave(1)@127.0.0.1:5051".parse().unwrap();
/// assert_eq!(pid.id(), "slave(1)");
/// assert_eq!(pid.port(), 5051);
/// assert_eq!(pid.to_string(), "slave(1)@127.0.0.1:5051");
/// assert!("slave(1)@127.0.0.1:0".parse::<Upid>().is_err());
/// ```
#[derive(Clone)]
pub struct Upid(Arc<Inner>);

impl Upid {
    /// Builds a UPID from its parts, checking each as [`Upid::parse`] does.
    pub fn new(id: &str, host: Host, port: u16) -> Result<Upid, UpidError> {
        let text = format!("{id}@{host}:{port}");
        validate_id(id, &text)?;
        if port == 0 {
            return Err(UpidError::ZeroPort(text));
        }
        if let Host::Name(name) = &host {
            if !valid_dns_name(name) {
                return Err(UpidError::InvalidHost {
                    host: name.clone(),
                    text,
                });
            }
        }
        Ok(Upid(Arc::new(Inner {
            at: id.len(),
            id: id.to_owned(),
            host,
            port,
            text,
        })))
    }

    /// Parses `id@host:port`, saying precisely what is wrong with a bad text.
    pub fn parse(text: &str) -> Result<Upid, UpidError> {
        let (id, address) = text
            .split_once('@')
            .ok_or_else(|| UpidError::MissingAt(text.to_owned()))?;
        validate_id(id, text)?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| UpidError::MissingColon(text.to_owned()))?;
        let port_num: u16 = port.parse().map_err(|_| UpidError::BadPort {
            text: text.to_owned(),
            port: port.to_owned(),
        })?;
        if port_num == 0 {
            return Err(UpidError::ZeroPort(text.to_owned()));
        }
        let host = parse_host(host).ok_or_else(|| UpidError::InvalidHost {
            text: text.to_owned(),
            host: host.to_owned(),
        })?;
        Upid::new(id, host, port_num)
    }

    /// The process id, e.g. `slave(1)`.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The host part.
    pub fn host(&self) -> &Host {
        &self.0.host
    }

    /// The port of the node's listener.
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// `host:port`: the node this process lives on; every process of a node shares it.
    pub fn address(&self) -> &str {
        &self.0.text[self.0.at + 1..]
    }

    /// The UPID as text, without allocating.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }
}

fn validate_id(id: &str, text: &str) -> Result<(), UpidError> {
    if id.is_empty() {
        return Err(UpidError::EmptyId(text.to_owned()));
    }
    let bad =
        |c: char| c.is_whitespace() || c.is_control() || matches!(c, '@' | '/' | '?' | '#' | '%');
    if id.len() > MAX_ID_BYTES || id.chars().any(bad) {
        return Err(UpidError::InvalidId(id.to_owned()));
    }
    Ok(())
}

fn parse_host(host: &str) -> Option<Host> {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse().ok().map(|ip| Host::Ip(IpAddr::V6(ip)));
    }
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return Some(Host::Ip(IpAddr::V4(ip)));
    }
    valid_dns_name(host).then(|| Host::Name(host.to_owned()))
}

/// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
fn valid_dns_name(name: &str) -> bool {
    // A name made only of digits and dots would be a malformed IPv4 address, not a host name.
    let all_numeric = name.chars().all(|c| c.is_ascii_digit() || c == '.');
    !name.is_empty()
        && name.len() <= MAX_HOST_BYTES
        && !all_numeric
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl FromStr for Upid {
    type Err = UpidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Upid::parse(s)
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}

impl fmt::Debug for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Upid({})", self.0.text)
    }
}

impl PartialEq for Upid {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.text == other.0.text
    }
}

impl Eq for Upid {}

impl std::hash::Hash for Upid {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.text.hash(state)
    }
}

impl PartialOrd for Upid {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Upid {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.text.cmp(&other.0.text)
    }
}

impl Serialize for Upid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Upid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Upid::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4_ipv6_and_names() {
        let p = Upid::parse("master@10.0.0.5:5050").unwrap();
        assert_eq!(p.id(), "master");
        assert_eq!(p.host(), &Host::Ip("10.0.0.5".parse().unwrap()));
        assert_eq!(p.address(), "10.0.0.5:5050");
        let p = Upid::parse("slave(3)@[::1]:5051").unwrap();
        assert_eq!(p.host(), &Host::Ip("::1".parse().unwrap()));
        assert_eq!(p.to_string(), "slave(3)@[::1]:5051");
        let p = Upid::parse("scheduler-1@node-7.example.org:80").unwrap();
        assert_eq!(p.host(), &Host::Name("node-7.example.org".into()));
    }

    #[test]
    fn precise_errors() {
        assert!(matches!(Upid::parse("@h:1"), Err(UpidError::EmptyId(_))));
        assert!(matches!(
            Upid::parse("a/b@h:1"),
            Err(UpidError::InvalidId(_))
        ));
        assert!(matches!(
            Upid::parse("a b@h:1"),
            Err(UpidError::InvalidId(_))
        ));
        assert!(matches!(
            Upid::parse("master"),
            Err(UpidError::MissingAt(_))
        ));
        assert!(matches!(
            Upid::parse("master@host"),
            Err(UpidError::MissingColon(_))
        ));
        assert!(matches!(
            Upid::parse("m@h:x"),
            Err(UpidError::BadPort { .. })
        ));
        assert!(matches!(
            Upid::parse("m@h:70000"),
            Err(UpidError::BadPort { .. })
        ));
        assert!(matches!(
            Upid::parse("m@h:-1"),
            Err(UpidError::BadPort { .. })
        ));
        assert!(matches!(
            Upid::parse("m@h:"),
            Err(UpidError::BadPort { .. })
        ));
        assert!(matches!(Upid::parse("m@h:0"), Err(UpidError::ZeroPort(_))));
        assert!(matches!(
            Upid::parse("m@:1"),
            Err(UpidError::InvalidHost { .. })
        ));
        assert!(matches!(
            Upid::parse("m@256.1.1.1:1"),
            Err(UpidError::InvalidHost { .. })
        ));
        assert!(matches!(
            Upid::parse("m@-bad-.org:1"),
            Err(UpidError::InvalidHost { .. })
        ));
        assert!(matches!(
            Upid::parse("m@[zz]:1"),
            Err(UpidError::InvalidHost { .. })
        ));
        assert!(matches!(
            Upid::parse("m@a..b:1"),
            Err(UpidError::InvalidHost { .. })
        ));
        let long = "x".repeat(MAX_ID_BYTES + 1);
        assert!(matches!(
            Upid::parse(&format!("{long}@h:1")),
            Err(UpidError::InvalidId(_))
        ));
    }

    #[test]
    fn error_messages_say_what_was_expected() {
        let e = Upid::parse("m@h:0").unwrap_err().to_string();
        assert!(e.contains("1..=65535"), "{e}");
        let e = Upid::parse("master").unwrap_err().to_string();
        assert!(e.contains("id@host:port"), "{e}");
    }

    #[test]
    fn serde_round_trip_and_equality() {
        let p = Upid::parse("slave(1)@127.0.0.1:5051").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"slave(1)@127.0.0.1:5051\"");
        let back: Upid = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        assert!(serde_json::from_str::<Upid>("\"nope\"").is_err());
    }
}
