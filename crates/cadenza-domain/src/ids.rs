//! Prefixed ULID identifiers and `external_id:` references (CONTRACT §1.3).

use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::reasons::Reason;

/// Every kind of identifier Cadenza mints. `prefix` is what new ids get; `accepted` lists every
/// prefix a client may send (seed-era and later spellings both name the same resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    Account,
    Workspace,
    Profile,
    ApiKey,
    WorkspaceSecret,
    ToolSetSecret,
    Agent,
    Model,
    MemoryLayer,
    MemoryEntry,
    Upload,
    Variation,
    Schedule,
    Assignment,
    LayerAssignment,
    Tool,
    ToolSet,
    Job,
    Objective,
    ObjectiveEvent,
    Feedback,
    WebhookDelivery,
    /// The Standard-Webhooks message id (`webhook-id`) of one event for one receiver.
    WebhookMessage,
    ToolSetEvent,
    ContextWindow,
    ToolCall,
    Task,
}

impl IdKind {
    pub fn prefix(self) -> &'static str {
        self.accepted()[0]
    }

    /// Accepted prefixes, the one new ids get first.
    pub fn accepted(self) -> &'static [&'static str] {
        match self {
            IdKind::Account => &["account"],
            IdKind::Workspace => &["workspace"],
            IdKind::Profile => &["profile"],
            IdKind::ApiKey => &["apikey"],
            IdKind::WorkspaceSecret => &["wsecret"],
            IdKind::ToolSetSecret => &["toolsecret"],
            IdKind::Agent => &["agent"],
            IdKind::Model => &["model"],
            IdKind::MemoryLayer => &["memlyr"],
            IdKind::MemoryEntry => &["mementry"],
            IdKind::Upload => &["upload"],
            IdKind::Variation => &["agentvar", "av"],
            IdKind::Schedule => &["as"],
            IdKind::Assignment => &["avt"],
            IdKind::LayerAssignment => &["avml"],
            IdKind::Tool => &["tool"],
            IdKind::ToolSet => &["toolset", "ts"],
            IdKind::Job => &["job"],
            IdKind::Objective => &["obj"],
            IdKind::ObjectiveEvent => &["objevt"],
            IdKind::Feedback => &["objfb"],
            IdKind::WebhookDelivery => &["whdlv"],
            IdKind::WebhookMessage => &["msg"],
            IdKind::ToolSetEvent => &["tsevt"],
            IdKind::ContextWindow => &["objwin"],
            IdKind::ToolCall => &["toolcall"],
            IdKind::Task => &["objtask"],
        }
    }

    /// Human name used in error messages ("api key not found").
    pub fn noun(self) -> &'static str {
        match self {
            IdKind::Account => "account",
            IdKind::Workspace => "workspace",
            IdKind::Profile => "profile",
            IdKind::ApiKey => "api key",
            IdKind::WorkspaceSecret => "workspace secret",
            IdKind::ToolSetSecret => "tool set secret",
            IdKind::Agent => "agent",
            IdKind::Model => "model",
            IdKind::MemoryLayer => "memory layer",
            IdKind::MemoryEntry => "memory entry",
            IdKind::Upload => "upload",
            IdKind::Variation => "variation",
            IdKind::Schedule => "schedule",
            IdKind::Assignment => "assignment",
            IdKind::LayerAssignment => "memory layer assignment",
            IdKind::Tool => "tool",
            IdKind::ToolSet => "tool set",
            IdKind::Job => "job",
            IdKind::Objective => "objective",
            IdKind::ObjectiveEvent => "objective event",
            IdKind::Feedback => "feedback",
            IdKind::WebhookDelivery => "webhook delivery",
            IdKind::WebhookMessage => "webhook message",
            IdKind::ToolSetEvent => "tool set event",
            IdKind::ContextWindow => "context window",
            IdKind::ToolCall => "tool call",
            IdKind::Task => "task",
        }
    }

    /// A fresh id with this kind's prefix, time-ordered by `now_ms`.
    pub fn new_id(self, now_ms: i64) -> String {
        format!("{}_{}", self.prefix(), next_ulid(now_ms))
    }

    /// Checks that `raw` is a well-formed id of this kind and returns it in canonical form
    /// (the minted prefix; the ULID part upper-cased).
    pub fn parse(self, raw: &str) -> Result<String> {
        let bad = || self.invalid_id(format!("invalid {} id: {raw:?}", self.noun()));
        let (prefix, body) = raw.split_once('_').ok_or_else(bad)?;
        // A ULID is 128 bits: 26 base32 digits hold 130, so the first digit is at most 7
        // (the decoder would drop the excess bits and alias another id).
        if !self.accepted().contains(&prefix) || body.bytes().next().is_none_or(|b| b > b'7') {
            return Err(bad());
        }
        let ulid = ulid::Ulid::from_string(body).map_err(|_| bad())?;
        Ok(format!("{}_{}", self.prefix(), ulid))
    }

    /// The regular expression (ECMA-262, anchored) of exactly what `parse` accepts, for the
    /// OpenAPI document.
    pub fn pattern(self) -> String {
        format!("^(?:{})_{ULID_PATTERN}$", self.accepted().join("|"))
    }

    /// `ID_INVALID`, naming the prefix an id of this kind has.
    fn invalid_id(self, message: String) -> Error {
        Error::of(Reason::IdInvalid, message).with_meta("expected", self.prefix())
    }
}

/// A ULID as `parse` accepts it: 26 Crockford base32 digits in either case, the first at most 7.
pub const ULID_PATTERN: &str = "[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}";

/// How a request names a resource: by id, or by `external_id:<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdRef {
    Id(String),
    External(String),
}

impl IdRef {
    /// Parses a path or body reference to a resource of `kind`.
    pub fn parse(kind: IdKind, raw: &str) -> Result<Self> {
        if let Some(ext) = raw.strip_prefix("external_id:") {
            if ext.is_empty() {
                return Err(kind.invalid_id(format!("empty external id for {}", kind.noun())));
            }
            return Ok(IdRef::External(ext.to_string()));
        }
        kind.parse(raw).map(IdRef::Id)
    }

    /// The regular expression of exactly what `parse` accepts for `kind`: an id, or
    /// `external_id:` and at least one character.
    pub fn pattern(kind: IdKind) -> String {
        format!("^(?:(?:{})_{ULID_PATTERN}|external_id:[\\s\\S]+)$", kind.accepted().join("|"))
    }
}

/// Monotonic ULIDs: ids minted in the same millisecond still sort in creation order, which is
/// what makes id order equal creation order for lists and cursors.
fn next_ulid(now_ms: i64) -> ulid::Ulid {
    static LAST: Mutex<Option<ulid::Ulid>> = Mutex::new(None);
    let ms = u64::try_from(now_ms).unwrap_or(0);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let fresh = ulid::Ulid::from_parts(ms, rand::random::<u128>());
    let id = match *last {
        Some(prev) if prev.timestamp_ms() >= ms => prev.increment().unwrap_or(fresh),
        _ => fresh,
    };
    *last = Some(id);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ordered_within_one_millisecond() {
        let a = IdKind::ApiKey.new_id(1_000);
        let b = IdKind::ApiKey.new_id(1_000);
        let c = IdKind::ApiKey.new_id(999);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert!(a.starts_with("apikey_") && a.len() == "apikey_".len() + 26);
    }

    #[test]
    fn parse_checks_prefix_and_body() {
        let id = IdKind::Workspace.new_id(5);
        assert_eq!(IdKind::Workspace.parse(&id).ok(), Some(id.clone()));
        let err = IdKind::ApiKey.parse(&id).err();
        assert_eq!(err.as_ref().map(|e| e.reason), Some(Reason::IdInvalid));
        assert_eq!(err.and_then(|e| e.metadata.get("expected").cloned()).as_deref(), Some("apikey"));
        assert!(IdKind::Workspace.parse("workspace_nope").is_err());
        assert!(IdKind::Workspace.parse("nounderscore").is_err());
        let lower = id.to_lowercase();
        assert_eq!(IdKind::Workspace.parse(&lower).ok(), Some(id));
    }

    /// The documented patterns accept exactly what the parsers accept.
    #[test]
    fn patterns_agree_with_parse() {
        let id = IdKind::Variation.new_id(7);
        let ulid = id.split_once('_').map(|(_, u)| u.to_string()).unwrap_or_default();
        let samples = [
            id.clone(),
            id.to_lowercase(),
            format!("av_{ulid}"),
            format!("agent_{ulid}"),
            format!("agentvar_8{}", &ulid[1..]),
            format!("agentvar_Z{}", &ulid[1..]),
            format!("agentvar_{}", &ulid[1..]),
            format!("agentvar_{ulid}0"),
            format!("agentvar_{}I", &ulid[..25]),
            format!("agentvar_{}U", &ulid[..25]),
            format!("{id}\n"),
            "agentvar_".into(),
            "0".into(),
            "external_id:x".into(),
            "external_id: \n".into(),
            "external_id:".into(),
        ];
        let matcher = |p: String| {
            jsonschema::validator_for(&serde_json::json!({"type": "string", "pattern": p})).map_err(|e| e.to_string())
        };
        let strict = matcher(IdKind::Variation.pattern());
        let refs = matcher(IdRef::pattern(IdKind::Variation));
        let (Ok(strict), Ok(refs)) = (strict, refs) else { panic!("patterns compile") };
        for s in samples {
            let v = serde_json::json!(s);
            assert_eq!(strict.is_valid(&v), IdKind::Variation.parse(&s).is_ok(), "id {s:?}");
            assert_eq!(refs.is_valid(&v), IdRef::parse(IdKind::Variation, &s).is_ok(), "ref {s:?}");
        }
    }

    #[test]
    fn external_refs() {
        assert_eq!(
            IdRef::parse(IdKind::Workspace, "external_id:default").ok(),
            Some(IdRef::External("default".into()))
        );
        assert!(IdRef::parse(IdKind::Workspace, "external_id:").is_err());
    }
}
