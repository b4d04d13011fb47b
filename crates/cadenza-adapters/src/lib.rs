//! The IO side of tool sets (CONTRACT §12): where tools come from and which of them a tool set
//! keeps. No database code; the sync job and the API call into this crate and store the results.
//!
//! * [`discovered`]: the neutral [`DiscoveredTool`] every source produces, with a signature that
//!   tells a changed tool from an unchanged one.
//! * [`openapi`]: an OpenAPI 3.0/3.1 document → one tool per operation.
//! * [`filters`]: `includeTools` / `excludeTools` / `toolApprovals`.
//! * [`mcp`]: the [`McpClient`] trait and its rmcp implementation.
//! * [`http`]: fetching a spec by URL, bounded in time and size.
//! * [`egress`]: the [`EgressPolicy`] every outbound request of this crate goes through.
//!
//! # Egress policy
//!
//! Tool set URLs are chosen by whoever configures the tool set, so every spec fetch and MCP
//! connection is checked against one [`EgressPolicy`] ([`http::FetchOptions::egress`],
//! [`McpOptions::egress`]): the URL before sending (scheme, literal IP host, host name), every
//! address a name resolves to, and every redirect hop. A refusal fails with the sync error kind
//! `egress_refused` before anything is sent to the refused destination.
//!
//! Always refused, because they are where server-side request forgery finds cloud credentials:
//! link-local addresses (169.254.0.0/16 and fe80::/10, which hold the metadata services of most
//! clouds), the metadata addresses fd00:ec2::254 and 100.100.100.200, metadata host names such
//! as `metadata.google.internal`, and addresses nothing legitimate is fetched from (unspecified,
//! multicast, broadcast). IPv6 forms of an IPv4 address (`::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`)
//! are judged as that IPv4 address.
//!
//! Allowed by default, and each can be turned off: loopback (`allow_loopback`) and private
//! networks (`allow_private`: 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7). Cadenza is
//! self-hosted, and its users point tool sets at services on their own machine and network.

pub mod discovered;
pub mod egress;
pub mod error;
pub mod filters;
pub mod http;
pub mod mcp;
pub mod openapi;

pub use discovered::{DiscoveredTool, HttpBody, HttpCall, HttpParam, ToolAnnotations};
pub use egress::{EgressPolicy, EgressReason, EgressRefusal};
pub use error::{SpecError, SpecErrorKind, SyncError, SyncErrorKind};
pub use filters::{ApprovalRequirementFilter, AttributeFilter, FilterError, StringMatcher, ToolFilter};
pub use mcp::{McpClient, McpOptions, RmcpClient};
pub use openapi::{OpenApiOptions, OpenApiTools, normalise_30_to_31, tools_from_openapi};
