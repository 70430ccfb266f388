//! `transport_url` parsing: `rabbit://user:pass@host:port[,user:pass@host2:port2...]/vhost`,
//! as oslo.messaging accepts it (several hosts, percent-encoded user, password and vhost).

use std::fmt;

use percent_encoding::percent_decode_str;

use crate::RpcError;

/// Default AMQP port.
pub const DEFAULT_PORT: u16 = 5672;

/// One broker host with its credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerHost {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (default 5672).
    pub port: u16,
    /// User name (default `guest`).
    pub username: String,
    /// Password (default `guest`). Never printed by `Debug`/`Display`.
    pub password: String,
}

impl fmt::Debug for BrokerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.username, self.host, self.port)
    }
}

/// A parsed `transport_url`.
#[derive(Clone, PartialEq, Eq)]
pub struct TransportUrl {
    /// Hosts, tried in order (then round robin) when connecting.
    pub hosts: Vec<BrokerHost>,
    /// Virtual host (`/` when the URL has no path).
    pub virtual_host: String,
}

impl fmt::Debug for TransportUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rabbit://{:?}/{}", self.hosts, self.virtual_host)
    }
}

impl fmt::Display for TransportUrl {
    /// The URL with passwords masked, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| format!("{}:***@{}:{}", h.username, bracket(&h.host), h.port))
            .collect();
        let vhost = if self.virtual_host == "/" {
            ""
        } else {
            &self.virtual_host
        };
        write!(f, "rabbit://{}/{}", hosts.join(","), vhost)
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn decode(s: &str) -> Result<String, RpcError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| {
            RpcError::Config(format!(
                "invalid percent-encoding in transport_url part {s:?}"
            ))
        })
}

impl TransportUrl {
    /// The full URL text including passwords (for a guest's configuration file; use
    /// `Display` for logs).
    pub fn to_url_string(&self) -> String {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        let e = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| {
                format!(
                    "{}:{}@{}:{}",
                    e(&h.username),
                    e(&h.password),
                    bracket(&h.host),
                    h.port
                )
            })
            .collect();
        let vhost = if self.virtual_host == "/" {
            String::new()
        } else {
            e(&self.virtual_host)
        };
        format!("rabbit://{}/{}", hosts.join(","), vhost)
    }

    /// Parses a `rabbit://` (or `amqp://`) URL. `rabbit://` alone means
    /// `guest:guest@localhost:5672/`.
    pub fn parse(url: &str) -> Result<Self, RpcError> {
        let rest = url
            .strip_prefix("rabbit://")
            .or_else(|| url.strip_prefix("amqp://"))
            .or_else(|| url.strip_prefix("kombu+rabbit://"))
            .ok_or_else(|| {
                RpcError::Config(format!(
                    "transport_url must start with rabbit:// (got scheme of {:?})",
                    url.split("://").next().unwrap_or("")
                ))
            })?;
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (netloc, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let mut hosts = Vec::new();
        for part in netloc.split(',') {
            hosts.push(parse_host(part)?);
        }
        let virtual_host = if path.is_empty() {
            "/".to_owned()
        } else {
            decode(path)?
        };
        Ok(Self {
            hosts,
            virtual_host,
        })
    }
}

fn parse_host(part: &str) -> Result<BrokerHost, RpcError> {
    let (creds, hostport) = match part.rfind('@') {
        Some(i) => (Some(&part[..i]), &part[i + 1..]),
        None => (None, part),
    };
    let (username, password) = match creds {
        Some(c) => match c.find(':') {
            Some(i) => (decode(&c[..i])?, decode(&c[i + 1..])?),
            None => (decode(c)?, String::new()),
        },
        None => ("guest".to_owned(), "guest".to_owned()),
    };
    let bad_port = |p: &str| RpcError::Config(format!("invalid port {p:?} in transport_url"));
    let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
        let end = stripped
            .find(']')
            .ok_or_else(|| RpcError::Config("unterminated [ in transport_url".into()))?;
        let host = &stripped[..end];
        let port = match stripped[end + 1..].strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad_port(p))?,
            None => DEFAULT_PORT,
        };
        (host.to_owned(), port)
    } else {
        match hostport.rfind(':') {
            Some(i) => (
                hostport[..i].to_owned(),
                hostport[i + 1..]
                    .parse()
                    .map_err(|_| bad_port(&hostport[i + 1..]))?,
            ),
            None => (hostport.to_owned(), DEFAULT_PORT),
        }
    };
    let host = if host.is_empty() {
        "localhost".to_owned()
    } else {
        decode(&host)?
    };
    Ok(BrokerHost {
        host,
        port,
        username,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oslo_forms() {
        let u = TransportUrl::parse("rabbit://").unwrap();
        assert_eq!(
            u.hosts,
            vec![BrokerHost {
                host: "localhost".into(),
                port: 5672,
                username: "guest".into(),
                password: "guest".into()
            }]
        );
        assert_eq!(u.virtual_host, "/");

        let u =
            TransportUrl::parse("rabbit://trove:p%40ss@10.0.0.1:5673,other:pw@[::1]/trove%2Fvh")
                .unwrap();
        assert_eq!(u.hosts.len(), 2);
        assert_eq!(u.hosts[0].password, "p@ss");
        assert_eq!(u.hosts[0].port, 5673);
        assert_eq!(u.hosts[1].host, "::1");
        assert_eq!(u.hosts[1].port, 5672);
        assert_eq!(u.virtual_host, "trove/vh");
        assert!(!u.to_string().contains("p@ss"));
        assert!(!format!("{u:?}").contains("pw"));

        assert_eq!(TransportUrl::parse(&u.to_url_string()).unwrap(), u);
        assert!(TransportUrl::parse("http://x").is_err());
        assert!(TransportUrl::parse("rabbit://h:notaport/").is_err());
    }
}
