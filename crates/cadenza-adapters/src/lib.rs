//! The IO side of tool sets (CONTRACT §12): where tools come from and which of them a tool set
//! keeps. No database code; the sync job and the API call into this crate and store the results.
//!
//! * [`discovered`]: the neutral [`DiscoveredTool`] every source produces, with a signature that
//!   tells a changed tool from an unchanged one.
//! * [`openapi`]: an OpenAPI 3.0/3.1 document → one tool per operation.
//! * [`filters`]: `includeTools` / `excludeTools` / `toolApprovals`.
//! * [`mcp`]: the [`McpClient`] trait and its rmcp implementation.
//! * [`http`]: fetching a spec by URL, bounded in time and size.

pub mod discovered;
pub mod error;
pub mod filters;
pub mod http;
pub mod mcp;
pub mod openapi;

pub use discovered::{DiscoveredTool, HttpBody, HttpCall, HttpParam, ToolAnnotations};
pub use error::{SpecError, SpecErrorKind, SyncError, SyncErrorKind};
pub use filters::{ApprovalRequirementFilter, AttributeFilter, FilterError, StringMatcher, ToolFilter};
pub use mcp::{McpClient, McpOptions, RmcpClient};
pub use openapi::{OpenApiOptions, OpenApiTools, normalise_30_to_31, tools_from_openapi};
