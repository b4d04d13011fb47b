//! Every reason an error can carry: the stable, machine-readable `google.rpc.ErrorInfo.reason`
//! of the API's error body (docs/ERRORS.md lists them all; a test keeps the two in step).
//!
//! A reason names *why* a request failed; the gRPC code says what class of failure it is. Each
//! reason has a default code ([`Reason::code`]) that [`crate::Error::of`] uses; an error site may
//! keep another code (a few rules were 400 `INVALID_ARGUMENT` before they had a reason, and stay
//! so). The strings never change once released: clients match on them.

use crate::error::Code;

/// Declares [`Reason`] from one table: `Variant = ("STRING", DefaultCode, "description")`.
macro_rules! reasons {
    ($($variant:ident = ($text:literal, $code:ident, $description:literal)),* $(,)?) => {
        /// Why a request failed, as a stable SCREAMING_SNAKE_CASE string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $(#[doc = $description] $variant,)*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The wire string, e.g. `VARIATION_CYCLE`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $text,)*
                }
            }

            /// The gRPC code an error with this reason gets unless its site says otherwise.
            pub fn code(self) -> Code {
                match self {
                    $(Reason::$variant => Code::$code,)*
                }
            }

            /// One line for humans (docs/ERRORS.md carries the same text).
            pub fn description(self) -> &'static str {
                match self {
                    $(Reason::$variant => $description,)*
                }
            }
        }
    };
}

reasons! {
    // ---- generic: one per gRPC code, for errors no more specific reason describes ----
    Cancelled = ("CANCELLED", Cancelled, "The caller cancelled the request."),
    Unknown = ("UNKNOWN", Unknown, "A failure of unknown kind."),
    InvalidArgument = ("INVALID_ARGUMENT", InvalidArgument, "The request is invalid in a way no more specific reason names."),
    DeadlineExceeded = ("DEADLINE_EXCEEDED", DeadlineExceeded, "The request did not finish within the server's deadline."),
    NotFound = ("NOT_FOUND", NotFound, "The resource does not exist or is not visible to the caller (`resource`)."),
    AlreadyExists = ("ALREADY_EXISTS", AlreadyExists, "A resource with the same unique value already exists (`field`: `externalId` or `name`, when known)."),
    PermissionDenied = ("PERMISSION_DENIED", PermissionDenied, "The caller may not do this, for a reason no more specific one names."),
    ResourceExhausted = ("RESOURCE_EXHAUSTED", ResourceExhausted, "A quota or rate limit is exhausted."),
    FailedPrecondition = ("FAILED_PRECONDITION", FailedPrecondition, "The resource is not in a state that allows this request."),
    Aborted = ("ABORTED", Aborted, "The operation was aborted by a concurrent change."),
    OutOfRange = ("OUT_OF_RANGE", OutOfRange, "A value is outside the accepted range."),
    Unimplemented = ("UNIMPLEMENTED", Unimplemented, "The operation is not implemented."),
    Internal = ("INTERNAL", Internal, "An internal failure; the server logged the detail."),
    Unavailable = ("UNAVAILABLE", Unavailable, "A dependency is temporarily unavailable; retry later."),
    DataLoss = ("DATA_LOSS", DataLoss, "Stored data cannot be read."),
    Unauthenticated = ("UNAUTHENTICATED", Unauthenticated, "The request carries no valid credentials."),

    // ---- the request itself ----
    RouteNotFound = ("ROUTE_NOT_FOUND", NotFound, "No route matches the request path."),
    MethodNotAllowed = ("METHOD_NOT_ALLOWED", Unimplemented, "The route exists, but not with this HTTP method (HTTP 405)."),
    CustomMethodUnknown = ("CUSTOM_METHOD_UNKNOWN", NotFound, "The `:verb` suffix names no custom method of this resource."),
    BodyInvalid = ("BODY_INVALID", InvalidArgument, "The request body is not valid JSON, or a field has the wrong type."),
    BodyTooLarge = ("BODY_TOO_LARGE", InvalidArgument, "The request body is larger than the server accepts (HTTP 413)."),
    TextUnstorable = ("TEXT_UNSTORABLE", InvalidArgument, "A value kept as text holds the NUL character (U+0000), which PostgreSQL cannot store."),
    QueryInvalid = ("QUERY_INVALID", InvalidArgument, "A query parameter is malformed, missing or has an unknown value (`parameter`)."),
    CursorInvalid = ("CURSOR_INVALID", InvalidArgument, "The `cursor` is not one this server issued."),
    IdInvalid = ("ID_INVALID", InvalidArgument, "An id is malformed or has the wrong prefix for its resource (`expected`: the prefix)."),
    FieldRequired = ("FIELD_REQUIRED", InvalidArgument, "A required field is missing or empty (`field`)."),
    FieldInvalid = ("FIELD_INVALID", InvalidArgument, "A field's value is invalid (`field` when known; `maxChars` or `limit` for size limits)."),
    FieldImmutable = ("FIELD_IMMUTABLE", InvalidArgument, "A field that is fixed at creation was changed (`field`)."),
    OneofInvalid = ("ONEOF_INVALID", InvalidArgument, "Exactly one of a set of alternative fields must be set (`fields`)."),
    UpdateMaskInvalid = ("UPDATE_MASK_INVALID", InvalidArgument, "`updateMask` names an unknown or read-only field (`field`)."),
    SchemaInvalid = ("SCHEMA_INVALID", InvalidArgument, "A JSON Schema is not a valid, self-contained schema (`field`)."),
    SchemaMismatch = ("SCHEMA_MISMATCH", InvalidArgument, "Data does not match the agent's JSON Schema (`field`)."),
    TemplateInvalid = ("TEMPLATE_INVALID", InvalidArgument, "A Liquid template does not parse or does not render (`field`)."),
    ScheduleRuleInvalid = ("SCHEDULE_RULE_INVALID", InvalidArgument, "A schedule rule (calendars, intervals, time zone) is invalid (`field`)."),

    // ---- credentials and permissions ----
    TokenMissing = ("TOKEN_MISSING", Unauthenticated, "No bearer token: send `Authorization: Bearer <api key>`."),
    TokenInvalid = ("TOKEN_INVALID", Unauthenticated, "The token names no enabled API key (unknown, disabled or rotated)."),
    ScopeMissing = ("SCOPE_MISSING", PermissionDenied, "The API key lacks the permission this request needs (`permission`)."),
    ScopeEscalation = ("SCOPE_ESCALATION", PermissionDenied, "An API key cannot grant or manage permissions it does not hold itself."),
    SystemKeyRequired = ("SYSTEM_KEY_REQUIRED", PermissionDenied, "Only the account's global API key may do this."),
    SystemKeyProtected = ("SYSTEM_KEY_PROTECTED", FailedPrecondition, "The global API key always has every permission and cannot be disabled."),
    KeyNotDeletable = ("KEY_NOT_DELETABLE", FailedPrecondition, "The global API key cannot be deleted; rotate it instead."),
    KeyWorkspaceFixed = ("KEY_WORKSPACE_FIXED", FailedPrecondition, "An API key belongs to exactly one workspace, fixed when it is created."),
    WorkspaceArchived = ("WORKSPACE_ARCHIVED", PermissionDenied, "The workspace is archived."),

    // ---- agents, variations, schedules, models ----
    AgentHasNoVariation = ("AGENT_HAS_NO_VARIATION", FailedPrecondition, "An agent needs at least one variation before it can be published."),
    AgentArchived = ("AGENT_ARCHIVED", FailedPrecondition, "The agent is archived: unarchive it first."),
    VariationCycle = ("VARIATION_CYCLE", InvalidArgument, "That sub-agent would make the agent its own ancestor."),
    VariationPinned = ("VARIATION_PINNED", FailedPrecondition, "Schedules fire this variation, so it cannot be deleted (`schedules`)."),
    ScheduleArchived = ("SCHEDULE_ARCHIVED", FailedPrecondition, "An archived schedule is final: create a new one."),
    ModelUnknown = ("MODEL_UNKNOWN", NotFound, "The model a field names is not a model of this workspace (`field`, `resource`)."),
    ModelDisabled = ("MODEL_DISABLED", FailedPrecondition, "The model is disabled in this workspace (`modelId`)."),
    ModelInUse = ("MODEL_IN_USE", FailedPrecondition, "Variations still run on the model, so it cannot be disabled (`modelId`, `variations`)."),

    // ---- objectives ----
    ObjectiveEnded = ("OBJECTIVE_ENDED", FailedPrecondition, "The objective has ended (FINALIZED, CANCELLED, TIMED_OUT or FAILED): nothing more can happen to it (`state`)."),
    ObjectiveBusy = ("OBJECTIVE_BUSY", FailedPrecondition, "The objective is running: continue it with `enqueue: true` to queue the message."),
    ObjectiveMessageRequired = ("OBJECTIVE_MESSAGE_REQUIRED", InvalidArgument, "No first user message: send `initialMessage` (or `firstUserMessage`), or give the variation a first-message template."),
    ToolCallNotWaiting = ("TOOL_CALL_NOT_WAITING", FailedPrecondition, "The tool call is not waiting for this: approve and deny need WAITING_FOR_APPROVAL, setContent a bare tool's call waiting for content (`status`)."),

    // ---- memory ----
    MemoryStackFull = ("MEMORY_STACK_FULL", InvalidArgument, "The variation's memory stack already holds the maximum number of layers (`limit`)."),
    MemoryPositionTaken = ("MEMORY_POSITION_TAKEN", InvalidArgument, "Another layer already sits at that position of the stack (`position`)."),
    MemoryLayerAlreadyStacked = ("MEMORY_LAYER_ALREADY_STACKED", InvalidArgument, "The memory layer is already in the variation's stack (`memoryLayerId`)."),
    MemoryLayerSystemManaged = ("MEMORY_LAYER_SYSTEM_MANAGED", FailedPrecondition, "The memory layer is managed by the runtime (episodic) and cannot be changed or assigned through the API."),
    MemoryLayerInUse = ("MEMORY_LAYER_IN_USE", FailedPrecondition, "The memory layer is in some variation's stack, so it cannot be deleted (`variations`)."),

    // ---- tools and tool sets ----
    ToolSetAssigned = ("TOOL_SET_ASSIGNED", FailedPrecondition, "The tool set or one of its tools is assigned to a variation, so it cannot be deleted (`variations`)."),
    ToolSetArchived = ("TOOL_SET_ARCHIVED", FailedPrecondition, "The tool set is archived: unarchive it first."),
    ToolSetManaged = ("TOOL_SET_MANAGED", PermissionDenied, "The tool set is synced from its source; its tools cannot be edited by hand."),
    AdapterMismatch = ("ADAPTER_MISMATCH", InvalidArgument, "The request does not fit the tool set's adapter kind (`adapter`)."),
    OpenapiDocumentMissing = ("OPENAPI_DOCUMENT_MISSING", FailedPrecondition, "No OpenAPI document has been consumed yet: the first sync has not succeeded."),
    ToolNotAvailable = ("TOOL_NOT_AVAILABLE", InvalidArgument, "Only an AVAILABLE tool can be assigned: restore it first."),
    ToolAssigned = ("TOOL_ASSIGNED", FailedPrecondition, "The tool is assigned to a variation, so it cannot be omitted or deleted (`variations`)."),

    // ---- uploads ----
    UploadsNotConfigured = ("UPLOADS_NOT_CONFIGURED", Unavailable, "This server has no upload storage configured."),
    UploadTooLarge = ("UPLOAD_TOO_LARGE", InvalidArgument, "The declared size is over this server's upload limit (`maxBytes`)."),
    UploadSignatureInvalid = ("UPLOAD_SIGNATURE_INVALID", PermissionDenied, "The upload link is not valid (bad or foreign signature, unknown upload)."),
    UploadExpired = ("UPLOAD_EXPIRED", FailedPrecondition, "The upload link or the upload has expired: create a new upload (`uploadId` when known)."),
    UploadConsumed = ("UPLOAD_CONSUMED", FailedPrecondition, "The upload link or the upload was already used; each upload is used once (`uploadId` when known)."),
    UploadNotComplete = ("UPLOAD_NOT_COMPLETE", FailedPrecondition, "The upload's bytes have not been sent yet (`uploadId`)."),
    UploadTypeMismatch = ("UPLOAD_TYPE_MISMATCH", InvalidArgument, "The PUT's Content-Type is not exactly the declared one."),
    UploadSizeMismatch = ("UPLOAD_SIZE_MISMATCH", InvalidArgument, "The PUT's body is not exactly the declared size (`sizeBytes`)."),
    MediaLinkInvalid = ("MEDIA_LINK_INVALID", PermissionDenied, "The media link is not valid (bad or foreign signature)."),
    MediaLinkExpired = ("MEDIA_LINK_EXPIRED", PermissionDenied, "The media link has expired: read the tool result again for a fresh link."),
    UploadNotText = ("UPLOAD_NOT_TEXT", InvalidArgument, "The upload is not UTF-8 text, which this use needs (`field`)."),

    // ---- secrets ----
    SecretValueRequired = ("SECRET_VALUE_REQUIRED", InvalidArgument, "A workspace or tool-set secret needs a non-empty `spec.value`."),
    SecretUnreadable = ("SECRET_UNREADABLE", DataLoss, "A stored secret could not be decrypted (wrong master key or tampered data)."),
    MasterKeyInvalid = ("MASTER_KEY_INVALID", InvalidArgument, "The master key is not base64 of exactly 32 bytes."),

    // ---- infrastructure ----
    LeaseLost = ("LEASE_LOST", Aborted, "A write under a job lease lost the lease to another worker."),
    DatabaseUnavailable = ("DATABASE_UNAVAILABLE", Unavailable, "The database could not be reached; retry."),
    MigrationsPending = ("MIGRATIONS_PENDING", Unavailable, "The database's migrations are not applied yet."),
    StorageUnavailable = ("STORAGE_UNAVAILABLE", Unavailable, "Object storage could not be read or written; retry."),
    EgressRefused = ("EGRESS_REFUSED", InvalidArgument, "The URL points where the egress policy forbids outbound requests (cloud metadata, link-local, or a range the configuration refuses) (`field`)."),
}

impl Reason {
    /// The generic reason of a gRPC code: what [`crate::Error::new`] gives an error.
    pub fn generic(code: Code) -> Self {
        match code {
            Code::Cancelled => Reason::Cancelled,
            Code::Unknown => Reason::Unknown,
            Code::InvalidArgument => Reason::InvalidArgument,
            Code::DeadlineExceeded => Reason::DeadlineExceeded,
            Code::NotFound => Reason::NotFound,
            Code::AlreadyExists => Reason::AlreadyExists,
            Code::PermissionDenied => Reason::PermissionDenied,
            Code::ResourceExhausted => Reason::ResourceExhausted,
            Code::FailedPrecondition => Reason::FailedPrecondition,
            Code::Aborted => Reason::Aborted,
            Code::OutOfRange => Reason::OutOfRange,
            Code::Unimplemented => Reason::Unimplemented,
            Code::Internal => Reason::Internal,
            Code::Unavailable => Reason::Unavailable,
            Code::DataLoss => Reason::DataLoss,
            Code::Unauthenticated => Reason::Unauthenticated,
        }
    }

    /// The HTTP status of an error with this reason and its default code. Two reasons have a
    /// status of their own, as no gRPC code maps to it.
    pub fn http_status(self) -> u16 {
        match self {
            Reason::BodyTooLarge => 413,
            Reason::MethodNotAllowed => 405,
            other => other.code().http_status(),
        }
    }

    /// Parses a wire string back into its reason.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const ERRORS_MD: &str = include_str!("../../../docs/ERRORS.md");

    /// The docs/ERRORS.md table row of a reason.
    fn row(r: Reason) -> String {
        let code = r.code();
        format!("| `{}` | {} {} | {} | {} |", r.as_str(), code as i32, code.as_str(), r.http_status(), r.description())
    }

    #[test]
    fn reason_strings_are_unique_screaming_snake_case() {
        let mut seen = BTreeSet::new();
        for r in Reason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "{s} is declared twice");
            assert!(!s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'));
            assert!(!s.starts_with('_') && !s.ends_with('_') && !s.contains("__"), "{s}");
            assert_eq!(Reason::parse(s), Some(*r));
            assert!(!r.description().is_empty() && !r.description().contains('|'), "{s}");
        }
    }

    #[test]
    fn every_code_has_a_generic_reason_of_that_code() {
        for r in Reason::ALL {
            assert_eq!(Reason::generic(r.code()).code(), r.code(), "{r}");
        }
        assert_eq!(Reason::generic(Code::InvalidArgument), Reason::InvalidArgument);
        assert_eq!(Reason::generic(Code::NotFound).as_str(), "NOT_FOUND");
    }

    /// docs/ERRORS.md lists every reason, with its code, status and description, and no other.
    #[test]
    fn errors_md_lists_exactly_the_reasons() {
        // The reason tables are everything after the `## Reasons` heading.
        let tables = ERRORS_MD.split_once("\n## Reasons\n").map(|(_, t)| t).unwrap_or_default();
        assert!(!tables.is_empty(), "docs/ERRORS.md has no `## Reasons` section");
        let documented: BTreeSet<&str> = tables
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`'))
            .map(|(name, _)| name)
            .collect();
        let declared: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        let missing: Vec<_> = declared.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&declared).collect();
        assert!(missing.is_empty(), "reasons missing from docs/ERRORS.md: {missing:?}");
        assert!(unknown.is_empty(), "docs/ERRORS.md lists reasons the code does not declare: {unknown:?}");
        let lines: BTreeSet<&str> = tables.lines().map(str::trim_end).collect();
        for r in Reason::ALL {
            let want = row(*r);
            assert!(lines.contains(want.as_str()), "docs/ERRORS.md row of {r} is stale; it should read:\n{want}");
        }
    }
}
