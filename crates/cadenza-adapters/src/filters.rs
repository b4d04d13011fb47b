//! Which synced tools a tool set keeps and which need approval (CONTRACT §12.2): `includeTools`,
//! `excludeTools` (ToolFilter) and `toolApprovals` (ApprovalRequirementFilter).
//!
//! Wire shapes, both accepted on input, the tagged one emitted:
//! * StringMatcher: `{"exact": "x", "caseSensitive": true}` (seed) or
//!   `{"type": "exact", "exact": "x", "caseSensitive": true}` (Py 0.2+).
//! * ApprovalRequirementFilter: `{"always": true}` / `{"only": ToolFilter}`, optionally tagged
//!   `"type": "always" | "only"`. `{}` means "no approval required".
//!
//! Semantics chosen where the contract is silent:
//! * matching is case-insensitive unless `caseSensitive` is true (the proto default is false);
//! * `OPERATOR_UNSPECIFIED` behaves as `OPERATOR_AND`;
//! * a filter with no attribute filters is no filter: include keeps everything, exclude drops
//!   nothing, `only` requires nothing;
//! * a tool without a title matches `ATTRIBUTE_TITLE` against the empty string;
//! * `regex` is unanchored (a search), Rust `regex` syntax, at most 1 000 characters.
//!
//! Regexes are checked by [`ToolFilter::validate`], not while deserialising, so a stored
//! configuration always reads back; an unusable regex simply matches nothing.

use std::fmt;
use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::discovered::DiscoveredTool;

pub const MAX_REGEX_LEN: usize = 1_000;
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A filter configuration the API must refuse, with a message fit for a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// Where in the configuration, e.g. `includeTools.filters[1].matcher.regex`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FilterError {}

impl From<FilterError> for cadenza_domain::Error {
    fn from(e: FilterError) -> Self {
        cadenza_domain::Error::invalid(e.to_string())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    #[default]
    #[serde(rename = "OPERATOR_UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "OPERATOR_AND")]
    And,
    #[serde(rename = "OPERATOR_OR")]
    Or,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Attribute {
    #[default]
    #[serde(rename = "ATTRIBUTE_UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "ATTRIBUTE_NAME")]
    Name,
    #[serde(rename = "ATTRIBUTE_TITLE")]
    Title,
    #[serde(rename = "ATTRIBUTE_DESCRIPTION")]
    Description,
}

/// `{ operator, filters }`: one level of attribute filters joined by AND or OR.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub filters: Vec<AttributeFilter>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeFilter {
    #[serde(default)]
    pub attribute: Attribute,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<StringMatcher>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Exact,
    StartsWith,
    EndsWith,
    Contains,
    Regex,
}

impl MatchKind {
    fn key(self) -> &'static str {
        match self {
            MatchKind::Exact => "exact",
            MatchKind::StartsWith => "startsWith",
            MatchKind::EndsWith => "endsWith",
            MatchKind::Contains => "contains",
            MatchKind::Regex => "regex",
        }
    }
}

/// One of `exact`, `startsWith`, `endsWith`, `contains`, `regex`, plus `caseSensitive`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "RawMatcher", into = "RawMatcher")]
pub struct StringMatcher {
    pub kind: MatchKind,
    pub value: String,
    pub case_sensitive: bool,
    /// The compiled regex, built on first use (None inside when the pattern is unusable).
    compiled: OnceLock<Option<Regex>>,
}

impl StringMatcher {
    pub fn new(kind: MatchKind, value: impl Into<String>, case_sensitive: bool) -> Self {
        Self { kind, value: value.into(), case_sensitive, compiled: OnceLock::new() }
    }

    fn build_regex(&self) -> Result<Regex, String> {
        if self.value.chars().count() > MAX_REGEX_LEN {
            return Err(format!("regex is longer than {MAX_REGEX_LEN} characters"));
        }
        RegexBuilder::new(&self.value)
            .case_insensitive(!self.case_sensitive)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| format!("invalid regex: {}", one_line(&e.to_string())))
    }

    /// Refuses an unusable regex; `field` names the matcher in the message.
    pub fn validate(&self, field: &str) -> Result<(), FilterError> {
        if self.kind == MatchKind::Regex {
            self.build_regex().map_err(|message| FilterError { field: format!("{field}.regex"), message })?;
        }
        Ok(())
    }

    pub fn matches(&self, text: &str) -> bool {
        if self.kind == MatchKind::Regex {
            return self.compiled.get_or_init(|| self.build_regex().ok()).as_ref().is_some_and(|re| re.is_match(text));
        }
        let (text, value) = if self.case_sensitive {
            (text.to_owned(), self.value.clone())
        } else {
            (text.to_lowercase(), self.value.to_lowercase())
        };
        match self.kind {
            MatchKind::Exact => text == value,
            MatchKind::StartsWith => text.starts_with(&value),
            MatchKind::EndsWith => text.ends_with(&value),
            MatchKind::Contains => text.contains(&value),
            MatchKind::Regex => false,
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Debug for StringMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StringMatcher")
            .field("kind", &self.kind)
            .field("value", &self.value)
            .field("case_sensitive", &self.case_sensitive)
            .finish()
    }
}

impl PartialEq for StringMatcher {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.value == other.value && self.case_sensitive == other.case_sensitive
    }
}

#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMatcher {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    starts_with: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ends_with: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    contains: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
    #[serde(default)]
    case_sensitive: bool,
}

impl TryFrom<RawMatcher> for StringMatcher {
    type Error = String;

    fn try_from(raw: RawMatcher) -> Result<Self, String> {
        let set: Vec<(MatchKind, String)> = [
            (MatchKind::Exact, raw.exact),
            (MatchKind::StartsWith, raw.starts_with),
            (MatchKind::EndsWith, raw.ends_with),
            (MatchKind::Contains, raw.contains),
            (MatchKind::Regex, raw.regex),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        let [(kind, value)] = <[(MatchKind, String); 1]>::try_from(set).map_err(|set| {
            if set.is_empty() {
                "a string matcher needs exactly one of exact, startsWith, endsWith, contains, regex".to_owned()
            } else {
                let keys: Vec<&str> = set.iter().map(|(k, _)| k.key()).collect();
                format!(
                    "a string matcher takes exactly one of exact, startsWith, endsWith, contains, regex; got {}",
                    keys.join(", ")
                )
            }
        })?;
        if let Some(tag) = raw.tag.filter(|t| !t.is_empty())
            && tag != kind.key()
        {
            return Err(format!("string matcher type {tag:?} does not match its populated field {:?}", kind.key()));
        }
        Ok(StringMatcher::new(kind, value, raw.case_sensitive))
    }
}

impl From<StringMatcher> for RawMatcher {
    fn from(m: StringMatcher) -> Self {
        let mut raw =
            RawMatcher { tag: Some(m.kind.key().to_owned()), case_sensitive: m.case_sensitive, ..Default::default() };
        let slot = match m.kind {
            MatchKind::Exact => &mut raw.exact,
            MatchKind::StartsWith => &mut raw.starts_with,
            MatchKind::EndsWith => &mut raw.ends_with,
            MatchKind::Contains => &mut raw.contains,
            MatchKind::Regex => &mut raw.regex,
        };
        *slot = Some(m.value);
        raw
    }
}

impl AttributeFilter {
    pub fn new(attribute: Attribute, matcher: StringMatcher) -> Self {
        Self { attribute, matcher: Some(matcher) }
    }

    pub fn validate(&self, field: &str) -> Result<(), FilterError> {
        if self.attribute == Attribute::Unspecified {
            return Err(FilterError {
                field: format!("{field}.attribute"),
                message: "must be ATTRIBUTE_NAME, ATTRIBUTE_TITLE or ATTRIBUTE_DESCRIPTION".into(),
            });
        }
        match &self.matcher {
            None => Err(FilterError { field: format!("{field}.matcher"), message: "is required".into() }),
            Some(m) => m.validate(&format!("{field}.matcher")),
        }
    }

    /// A filter that fails validation never matches.
    pub fn matches(&self, tool: &DiscoveredTool) -> bool {
        let Some(matcher) = &self.matcher else { return false };
        let text = match self.attribute {
            Attribute::Name => tool.name.as_str(),
            Attribute::Title => tool.title.as_deref().unwrap_or(""),
            Attribute::Description => tool.description.as_str(),
            Attribute::Unspecified => return false,
        };
        matcher.matches(text)
    }
}

impl ToolFilter {
    pub fn new(operator: Operator, filters: Vec<AttributeFilter>) -> Self {
        Self { operator, filters }
    }

    /// True when the filter holds no attribute filter and so selects nothing in particular.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// `field` is the configuration key, e.g. `spec.adapter.mcp.includeTools`.
    pub fn validate(&self, field: &str) -> Result<(), FilterError> {
        for (i, f) in self.filters.iter().enumerate() {
            f.validate(&format!("{field}.filters[{i}]"))?;
        }
        Ok(())
    }

    /// AND (also for an unspecified operator) or OR over the attribute filters. An empty filter
    /// matches every tool under AND and none under OR; [`apply`] treats it as absent instead.
    pub fn matches(&self, tool: &DiscoveredTool) -> bool {
        match self.operator {
            Operator::Or => self.filters.iter().any(|f| f.matches(tool)),
            Operator::And | Operator::Unspecified => self.filters.iter().all(|f| f.matches(tool)),
        }
    }
}

/// `{always: bool}` or `{only: ToolFilter}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawApproval", into = "RawApproval")]
pub enum ApprovalRequirementFilter {
    Always(bool),
    Only(ToolFilter),
}

impl Default for ApprovalRequirementFilter {
    fn default() -> Self {
        ApprovalRequirementFilter::Always(false)
    }
}

#[derive(Default, Serialize, Deserialize)]
struct RawApproval {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    always: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    only: Option<ToolFilter>,
}

impl TryFrom<RawApproval> for ApprovalRequirementFilter {
    type Error = String;

    fn try_from(raw: RawApproval) -> Result<Self, String> {
        let tag = raw.tag.filter(|t| !t.is_empty());
        let value = match (raw.always, raw.only) {
            (Some(_), Some(_)) => return Err("an approval filter takes either always or only, not both".into()),
            (Some(always), None) => ApprovalRequirementFilter::Always(always),
            (None, Some(only)) => ApprovalRequirementFilter::Only(only),
            (None, None) => match tag.as_deref() {
                None | Some("always") => ApprovalRequirementFilter::Always(false),
                Some("only") => ApprovalRequirementFilter::Only(ToolFilter::default()),
                Some(other) => return Err(format!("unknown approval filter type {other:?}")),
            },
        };
        let key = match value {
            ApprovalRequirementFilter::Always(_) => "always",
            ApprovalRequirementFilter::Only(_) => "only",
        };
        match tag {
            Some(tag) if tag != key => {
                Err(format!("approval filter type {tag:?} does not match its populated field {key:?}"))
            }
            _ => Ok(value),
        }
    }
}

impl From<ApprovalRequirementFilter> for RawApproval {
    fn from(a: ApprovalRequirementFilter) -> Self {
        match a {
            ApprovalRequirementFilter::Always(b) => {
                RawApproval { tag: Some("always".into()), always: Some(b), only: None }
            }
            ApprovalRequirementFilter::Only(f) => RawApproval { tag: Some("only".into()), always: None, only: Some(f) },
        }
    }
}

impl ApprovalRequirementFilter {
    pub fn validate(&self, field: &str) -> Result<(), FilterError> {
        match self {
            ApprovalRequirementFilter::Always(_) => Ok(()),
            ApprovalRequirementFilter::Only(f) => f.validate(&format!("{field}.only")),
        }
    }

    pub fn requires_approval(&self, tool: &DiscoveredTool) -> bool {
        match self {
            ApprovalRequirementFilter::Always(always) => *always,
            ApprovalRequirementFilter::Only(f) => !f.is_empty() && f.matches(tool),
        }
    }
}

/// What the filters made of one tool.
#[derive(Debug, Clone, PartialEq)]
pub struct FilteredTool {
    pub tool: DiscoveredTool,
    /// False when `includeTools` did not match or `excludeTools` did: the tool is OMITTED.
    pub included: bool,
    pub requires_approval: bool,
}

/// Every tool with its verdict, in input order; for a sync that keeps filtered-out tools as
/// OMITTED rather than forgetting them.
pub fn classify(
    tools: Vec<DiscoveredTool>,
    include: Option<&ToolFilter>,
    exclude: Option<&ToolFilter>,
    approval: Option<&ApprovalRequirementFilter>,
) -> Vec<FilteredTool> {
    let include = include.filter(|f| !f.is_empty());
    let exclude = exclude.filter(|f| !f.is_empty());
    tools
        .into_iter()
        .map(|tool| {
            let included = include.is_none_or(|f| f.matches(&tool)) && !exclude.is_some_and(|f| f.matches(&tool));
            let requires_approval = approval.is_some_and(|a| a.requires_approval(&tool));
            FilteredTool { tool, included, requires_approval }
        })
        .collect()
}

/// The tools the filters keep, each with whether it needs approval.
pub fn apply(
    tools: Vec<DiscoveredTool>,
    include: Option<&ToolFilter>,
    exclude: Option<&ToolFilter>,
    approval: Option<&ApprovalRequirementFilter>,
) -> Vec<(DiscoveredTool, bool)> {
    classify(tools, include, exclude, approval)
        .into_iter()
        .filter(|t| t.included)
        .map(|t| (t.tool, t.requires_approval))
        .collect()
}
