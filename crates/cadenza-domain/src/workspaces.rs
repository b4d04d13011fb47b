//! Workspaces (CONTRACT §18): the tenancy boundary of every resource.

use crate::Meta;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceStatus {
    Enabled,
    Disabled,
    Archived,
}

impl WorkspaceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceStatus::Enabled => "STATUS_ENABLED",
            WorkspaceStatus::Disabled => "STATUS_DISABLED",
            WorkspaceStatus::Archived => "STATUS_ARCHIVED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "STATUS_ENABLED" => Some(WorkspaceStatus::Enabled),
            "STATUS_DISABLED" => Some(WorkspaceStatus::Disabled),
            "STATUS_ARCHIVED" => Some(WorkspaceStatus::Archived),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Workspace {
    pub meta: Meta,
    pub description: String,
    pub status: WorkspaceStatus,
}

/// The external id and name of the workspace the first start creates.
pub const DEFAULT_WORKSPACE: &str = "default";
