//! `updateMask`: which fields a PATCH replaces (CONTRACT §1.7).

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::reasons::Reason;

/// A parsed update mask. `None` inside means "no mask": apply every field the body carries.
#[derive(Debug, Clone, Default)]
pub struct UpdateMask(Option<BTreeSet<String>>);

impl UpdateMask {
    /// Parses a comma-separated FieldMask, each segment spelled in camelCase or snake_case
    /// (`externalId` or `external_id`, nothing in between). `allowed` lists the camelCase paths
    /// the resource lets a client update; a path may also name a parent of them (`metadata`).
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self> {
        let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
            return Ok(Self(None));
        };
        let mut paths = BTreeSet::new();
        for p in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let segments: Vec<String> = p.split('.').map(snake_to_camel).collect();
            let spelled = p.split('.').zip(&segments).all(|(seg, camel)| seg == camel || seg == camel_to_snake(camel));
            let camel = segments.join(".");
            let known = spelled && allowed.iter().any(|a| *a == camel || a.starts_with(&format!("{camel}.")));
            if !known {
                return Err(Error::of(
                    Reason::UpdateMaskInvalid,
                    format!("updateMask names an unknown or read-only field: {p}"),
                )
                .with_meta("field", p));
            }
            paths.insert(camel);
        }
        Ok(Self(Some(paths)))
    }

    /// Whether the body carried a mask (not absent, `null` or blank).
    pub fn is_given(&self) -> bool {
        self.0.is_some()
    }

    /// Whether the update should touch `path`, given whether the body carried it.
    /// With a mask, a masked field absent from the body is cleared to its zero value by the caller.
    pub fn covers(&self, path: &str, present_in_body: bool) -> bool {
        match &self.0 {
            None => present_in_body,
            Some(paths) => paths
                .iter()
                .any(|p| p == path || path.starts_with(&format!("{p}.")) || p.starts_with(&format!("{path}."))),
        }
    }
}

/// The snake_case spelling of a camelCase segment (`externalId` → `external_id`).
pub fn camel_to_snake(seg: &str) -> String {
    let mut out = String::with_capacity(seg.len() + 4);
    for c in seg.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn snake_to_camel(seg: &str) -> String {
    let mut out = String::with_capacity(seg.len());
    let mut upper = false;
    for c in seg.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: &[&str] = &["metadata.name", "metadata.externalId", "spec.description"];

    #[test]
    fn mask_accepts_both_spellings() {
        let m = UpdateMask::parse(Some("metadata.external_id, spec.description"), ALLOWED).unwrap_or_default();
        assert!(m.covers("metadata.externalId", false));
        assert!(!m.covers("metadata.name", true));
        let err = UpdateMask::parse(Some("spec.token"), ALLOWED).err().map(|e| (e.reason, e.metadata));
        let field = [("field".to_string(), "spec.token".to_string())].into_iter().collect();
        assert_eq!(err, Some((Reason::UpdateMaskInvalid, field)));
    }

    #[test]
    fn each_segment_is_camel_or_snake_case_exactly() {
        for (raw, ok) in [
            ("metadata.externalId", true),
            ("metadata.external_id", true),
            ("metadata", true),
            (" spec.description ,, metadata.name", true),
            ("metadata.external__id", false),
            ("metadata.external_Id", false),
            ("metadata.name_", false),
            ("metadata._name", false),
            ("metadata.externalid", false),
            ("metadata .name", false),
            ("spec.token", false),
        ] {
            assert_eq!(UpdateMask::parse(Some(raw), ALLOWED).is_ok(), ok, "{raw:?}");
        }
        assert!(UpdateMask::parse(Some(" , "), ALLOWED).is_ok_and(|m| !m.covers("metadata.name", true)));
    }

    #[test]
    fn no_mask_means_present_fields() {
        let m = UpdateMask::parse(None, ALLOWED).unwrap_or_default();
        assert!(m.covers("metadata.name", true));
        assert!(!m.covers("metadata.name", false));
    }
}
