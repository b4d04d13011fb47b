//! Where outbound requests may go: one [`EgressPolicy`] for every URL this crate fetches or
//! talks to (spec URLs, MCP servers).
//!
//! A tool set's URL is chosen by whoever configures it, so without a policy the server could be
//! made to fetch its own cloud metadata (credentials) and hand the answer back as a "spec" or an
//! MCP error. The policy is applied at three points, because each alone has a gap:
//!
//! * before sending, on the URL: the scheme, a literal IP host and the host name itself
//!   ([`EgressPolicy::check_url`]; reqwest never resolves an IP-literal host);
//! * at resolution, on every address a name resolves to ([`EgressResolver`]): refused addresses
//!   are dropped, and a name with nothing left fails before any connection is made;
//! * on every redirect hop, on the URL of the hop ([`Redirects`]).
//!
//! Always refused: link-local addresses (169.254.0.0/16, fe80::/10, where cloud metadata
//! services answer), the metadata addresses fd00:ec2::254 and 100.100.100.200, unspecified,
//! multicast and broadcast addresses, and the well-known metadata host names. IPv4-mapped and
//! -compatible IPv6 addresses and the NAT64 prefix 64:ff9b::/96 are judged by the IPv4 address
//! they carry. Loopback and private networks are allowed unless turned off: a self-hosted
//! platform calls services on its own network.
//!
//! When an HTTP proxy is configured through the environment, the proxy resolves target names,
//! so the resolution check sees the proxy's address, not the target's; the URL checks still
//! apply.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which destinations outbound requests may reach. The default allows loopback and private
/// networks and refuses the rest of what [`EgressPolicy::check_ip`] lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPolicy {
    /// 127.0.0.0/8 and ::1.
    pub allow_loopback: bool,
    /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 (CGNAT) and fc00::/7 (except
    /// the metadata address fd00:ec2::254, which is always refused).
    pub allow_private: bool,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        Self { allow_loopback: true, allow_private: true }
    }
}

/// Host names of cloud metadata services, compared case-insensitively without a trailing dot.
const METADATA_HOSTS: &[&str] = &[
    "metadata.google.internal",
    "metadata",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
    "metadata.platformequinix.com",
];

const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);
const ALIBABA_METADATA: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);
const LINK_LOCAL_METADATA: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

impl EgressPolicy {
    /// Whether a connection to `ip` is allowed.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), EgressRefusal> {
        match self.judge_ip(ip) {
            None => Ok(()),
            Some(reason) => Err(EgressRefusal { host: Some(display_ip(ip)), resolved: None, reason }),
        }
    }

    /// The write-time check of a URL: the scheme must be http or https, and a literal IP host or
    /// a metadata host name is judged here. Other names pass; what they resolve to is judged by
    /// [`EgressResolver`] when a request is made.
    pub fn check_url(&self, url: &str) -> Result<(), EgressRefusal> {
        let parsed = reqwest::Url::parse(url.trim()).map_err(|_| EgressRefusal {
            host: None,
            resolved: None,
            reason: EgressReason::InvalidUrl,
        })?;
        self.check_parsed(&parsed)
    }

    /// [`check_url`](Self::check_url) on a parsed URL.
    pub fn check_parsed(&self, url: &reqwest::Url) -> Result<(), EgressRefusal> {
        if !matches!(url.scheme(), "http" | "https") {
            let host = url.host_str().filter(|h| !h.is_empty()).map(str::to_owned);
            return Err(EgressRefusal { host, resolved: None, reason: EgressReason::Scheme });
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(EgressRefusal { host: None, resolved: None, reason: EgressReason::InvalidUrl });
        };
        match parse_host_ip(host) {
            Some(ip) => self.check_ip(ip).map_err(|r| r.with_host(host)),
            None => self.check_name(host),
        }
    }

    /// The host-name part of the check: metadata host names are refused without resolving them.
    pub fn check_name(&self, host: &str) -> Result<(), EgressRefusal> {
        let normalised = host.trim_end_matches('.').to_ascii_lowercase();
        if METADATA_HOSTS.contains(&normalised.as_str()) {
            return Err(EgressRefusal {
                host: Some(host.to_owned()),
                resolved: None,
                reason: EgressReason::MetadataHost,
            });
        }
        Ok(())
    }

    /// The DNS resolver that enforces this policy on resolved addresses.
    pub fn resolver(&self) -> EgressResolver {
        EgressResolver { policy: self.clone() }
    }

    /// A redirect policy following `redirects`, with every hop checked against this policy
    /// first, so a hop to a refused target fails as a refusal whatever the other rules say.
    pub fn redirect_policy(&self, redirects: Redirects) -> reqwest::redirect::Policy {
        let max = match redirects {
            Redirects::None => return reqwest::redirect::Policy::none(),
            Redirects::SameOrigin { max } => max,
        };
        let policy = self.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            if let Err(refusal) = policy.check_parsed(attempt.url()) {
                return attempt.error(refusal);
            }
            let same_origin = attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
            if attempt.previous().len() > max {
                attempt.error(format!("more than {max} redirects"))
            } else if same_origin {
                attempt.follow()
            } else {
                attempt.stop()
            }
        })
    }

    /// Installs this policy on a client: the checking resolver and the checked redirect policy.
    /// Callers still check the URL itself ([`check_url`](Self::check_url)) before sending,
    /// because reqwest does not resolve IP-literal hosts.
    pub fn apply(&self, builder: reqwest::ClientBuilder, redirects: Redirects) -> reqwest::ClientBuilder {
        builder.dns_resolver(self.resolver()).redirect(self.redirect_policy(redirects))
    }

    fn judge_ip(&self, ip: IpAddr) -> Option<EgressReason> {
        match ip {
            IpAddr::V4(v4) => self.judge_v4(v4),
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(v4) => self.judge_v4(v4),
                None => self.judge_v6(v6),
            },
        }
    }

    fn judge_v4(&self, ip: Ipv4Addr) -> Option<EgressReason> {
        let [a, b, ..] = ip.octets();
        if ip == LINK_LOCAL_METADATA || ip == ALIBABA_METADATA {
            Some(EgressReason::CloudMetadata)
        } else if ip.is_link_local() {
            Some(EgressReason::LinkLocal)
        } else if a == 0 {
            Some(EgressReason::Unspecified)
        } else if ip.is_broadcast() {
            Some(EgressReason::Broadcast)
        } else if ip.is_multicast() {
            Some(EgressReason::Multicast)
        } else if ip.is_loopback() {
            (!self.allow_loopback).then_some(EgressReason::Loopback)
        } else if ip.is_private() || (a == 100 && (b & 0xc0) == 64) {
            (!self.allow_private).then_some(EgressReason::Private)
        } else {
            None
        }
    }

    fn judge_v6(&self, ip: Ipv6Addr) -> Option<EgressReason> {
        let first = ip.segments()[0];
        if ip == AWS_METADATA_V6 {
            Some(EgressReason::CloudMetadata)
        } else if ip.is_unspecified() {
            Some(EgressReason::Unspecified)
        } else if ip.is_multicast() {
            Some(EgressReason::Multicast)
        } else if (first & 0xffc0) == 0xfe80 {
            Some(EgressReason::LinkLocal)
        } else if ip.is_loopback() {
            (!self.allow_loopback).then_some(EgressReason::Loopback)
        } else if (first & 0xfe00) == 0xfc00 {
            (!self.allow_private).then_some(EgressReason::Private)
        } else {
            None
        }
    }
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`, but not `::` or `::1`) and NAT64 well-known prefix (`64:ff9b::a.b.c.d`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let o = ip.octets();
    let low = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    let compatible = s[..6].iter().all(|&x| x == 0) && !ip.is_unspecified() && !ip.is_loopback();
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    (compatible || nat64).then_some(low)
}

/// A URL host as an IP address, if it is one (`[..]` around IPv6).
fn parse_host_ip(host: &str) -> Option<IpAddr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse().ok()
}

fn display_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// What [`apply`](EgressPolicy::apply) does with redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Never follow one: the 3xx is the answer.
    None,
    /// Follow up to `max` redirects within the origin of the first URL; a redirect elsewhere
    /// ends the exchange on the 3xx (configured headers are credentials and must not be replayed
    /// to a host the tool set did not name). A hop to a refused target is a refusal.
    SameOrigin { max: usize },
}

/// Why a destination was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EgressReason {
    /// Not a URL, or one without a host.
    InvalidUrl,
    /// Not http or https.
    Scheme,
    /// A known cloud metadata address.
    CloudMetadata,
    /// A known cloud metadata host name.
    MetadataHost,
    LinkLocal,
    Unspecified,
    Multicast,
    Broadcast,
    /// Loopback, with `allow_loopback` off.
    Loopback,
    /// A private network, with `allow_private` off.
    Private,
}

impl EgressReason {
    fn describe(self) -> &'static str {
        match self {
            EgressReason::InvalidUrl => "not a valid URL with a host",
            EgressReason::Scheme => "only http and https URLs are allowed",
            EgressReason::CloudMetadata => "a cloud metadata address",
            EgressReason::MetadataHost => "a cloud metadata host name",
            EgressReason::LinkLocal => "a link-local address (where cloud metadata services answer)",
            EgressReason::Unspecified => "an unspecified address",
            EgressReason::Multicast => "a multicast address",
            EgressReason::Broadcast => "the broadcast address",
            EgressReason::Loopback => "a loopback address, and loopback egress is not allowed",
            EgressReason::Private => "a private-network address, and private-network egress is not allowed",
        }
    }
}

/// An outbound request the [`EgressPolicy`] refused. The message names the host and the reason
/// only (never userinfo, path or query), so it is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRefusal {
    host: Option<String>,
    /// The refused address a host name resolved to.
    resolved: Option<IpAddr>,
    reason: EgressReason,
}

impl EgressRefusal {
    /// The refused host as it appeared in the URL (or the refused address).
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    pub fn reason(&self) -> EgressReason {
        self.reason
    }
    /// For a refusal at resolution: the refused address the name resolved to.
    pub fn resolved(&self) -> Option<IpAddr> {
        self.resolved
    }

    fn with_host(mut self, host: &str) -> Self {
        self.host = Some(host.to_owned());
        self
    }
}

impl fmt::Display for EgressRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(host) => write!(f, "outbound request to {host} refused: ")?,
            None => f.write_str("outbound request refused: ")?,
        }
        match self.resolved {
            Some(ip) => write!(f, "it resolves only to refused addresses, such as {ip}, {}", self.reason.describe()),
            None => f.write_str(self.reason.describe()),
        }
    }
}

impl StdError for EgressRefusal {}

/// The first [`EgressRefusal`] in `error`'s source chain, if any.
pub fn refusal_in<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a EgressRefusal> {
    let mut current = Some(error);
    while let Some(err) = current {
        if let Some(refusal) = err.downcast_ref::<EgressRefusal>() {
            return Some(refusal);
        }
        current = err.source();
    }
    None
}

/// A [`reqwest::dns::Resolve`] that resolves with the system resolver (through tokio) and keeps
/// only the addresses the policy allows. When none is left, resolution fails with an
/// [`EgressRefusal`] (findable with [`refusal_in`]) and no connection is attempted.
#[derive(Debug, Clone)]
pub struct EgressResolver {
    policy: EgressPolicy,
}

impl EgressResolver {
    /// The allowed addresses of `host` (port 0; reqwest sets the URL's port).
    pub async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, Box<dyn StdError + Send + Sync>> {
        self.policy.check_name(host)?;
        let mut allowed = Vec::new();
        let mut refused = None;
        for addr in tokio::net::lookup_host((host, 0)).await? {
            match self.policy.judge_ip(addr.ip()) {
                None => allowed.push(addr),
                Some(reason) => {
                    refused.get_or_insert(EgressRefusal {
                        host: Some(host.to_owned()),
                        resolved: Some(addr.ip()),
                        reason,
                    });
                }
            }
        }
        match (allowed.is_empty(), refused) {
            (true, Some(refusal)) => Err(Box::new(refusal)),
            (true, None) => Err(format!("{host} resolves to no address").into()),
            (false, _) => Ok(allowed),
        }
    }
}

impl Resolve for EgressResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolver.lookup(&host).await?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &EgressPolicy, ip: &str) -> Option<EgressReason> {
        let ip: IpAddr = ip.parse().expect("an address");
        policy.check_ip(ip).err().map(|r| r.reason())
    }

    #[test]
    fn embedded_ipv4_is_judged_by_the_ipv4_address() {
        let policy = EgressPolicy::default();
        assert_eq!(refused(&policy, "::ffff:169.254.169.254"), Some(EgressReason::CloudMetadata));
        assert_eq!(refused(&policy, "::169.254.1.1"), Some(EgressReason::LinkLocal));
        assert_eq!(refused(&policy, "64:ff9b::a9fe:a9fe"), Some(EgressReason::CloudMetadata));
        assert_eq!(refused(&policy, "64:ff9b::808:808"), None);
        let closed = EgressPolicy { allow_loopback: false, allow_private: false };
        assert_eq!(refused(&closed, "::1"), Some(EgressReason::Loopback), "::1 is not ::0.0.0.1");
        assert_eq!(refused(&closed, "::ffff:10.0.0.1"), Some(EgressReason::Private));
        assert_eq!(refused(&closed, "64:ff9b::7f00:1"), Some(EgressReason::Loopback));
    }

    #[test]
    fn ranges_have_their_edges() {
        let closed = EgressPolicy { allow_loopback: false, allow_private: false };
        assert_eq!(refused(&closed, "100.64.0.1"), Some(EgressReason::Private));
        assert_eq!(refused(&closed, "100.127.255.255"), Some(EgressReason::Private));
        assert_eq!(refused(&closed, "100.128.0.1"), None);
        assert_eq!(refused(&closed, "172.31.0.1"), Some(EgressReason::Private));
        assert_eq!(refused(&closed, "172.32.0.1"), None);
        assert_eq!(refused(&closed, "fd12::1"), Some(EgressReason::Private));
        assert_eq!(refused(&closed, "fe80::1"), Some(EgressReason::LinkLocal));
        assert_eq!(refused(&closed, "febf::1"), Some(EgressReason::LinkLocal));
        assert_eq!(refused(&closed, "fec0::1"), None);
        assert_eq!(refused(&closed, "0.1.2.3"), Some(EgressReason::Unspecified));
        assert_eq!(refused(&closed, "224.0.0.1"), Some(EgressReason::Multicast));
        assert_eq!(refused(&closed, "ff02::1"), Some(EgressReason::Multicast));
        assert_eq!(refused(&closed, "255.255.255.255"), Some(EgressReason::Broadcast));
        assert_eq!(refused(&closed, "8.8.8.8"), None);
        assert_eq!(refused(&closed, "2001:4860:4860::8888"), None);
    }
}
