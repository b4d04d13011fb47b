//! API-key permissions (CONTRACT §16): `resource:verb` scopes, `manage` implies `read`, `*`.

use std::collections::BTreeSet;

use crate::error::{Error, Result};

/// The resources a scope can name.
pub const RESOURCES: &[&str] =
    &["agents", "objectives", "tools", "memory", "api_keys", "workspaces", "secrets", "account"];

/// The field permissions arrive in, for errors.
const FIELD: &str = "spec.permissions";

/// Resources that only have the `manage` verb.
const MANAGE_ONLY: &[&str] = &["secrets", "account"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    Read,
    Manage,
}

/// `resource:read` or `resource:manage`: a permission as keys hold it, errors name it and the
/// document states it.
pub fn permission(resource: &str, verb: Verb) -> String {
    let v = if verb == Verb::Manage { "manage" } else { "read" };
    format!("{resource}:{v}")
}

/// A validated, normalised permission set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes {
    all: bool,
    granted: BTreeSet<(String, Verb)>,
}

impl Scopes {
    pub fn all() -> Self {
        Self { all: true, granted: BTreeSet::new() }
    }

    /// Parses permission strings. Accepts the later `resource:verb` form and the seed-era
    /// `verb:resource` form; rejects anything else so a typo never silently grants nothing.
    pub fn parse<S: AsRef<str>>(perms: &[S]) -> Result<Self> {
        let mut scopes = Self::default();
        for p in perms {
            let p = p.as_ref().trim();
            if p == "*" {
                scopes.all = true;
                continue;
            }
            let bad = || {
                Error::invalid_field(
                    FIELD,
                    format!(
                        "unknown permission {p:?}: expected \"*\" or \"<resource>:<read|manage>\" with resource one of {}",
                        RESOURCES.join(", ")
                    ),
                )
            };
            let (a, b) = p.split_once(':').ok_or_else(bad)?;
            let (resource, verb) = match (verb_of(b), verb_of(a)) {
                (Some(v), _) => (a, v),
                (None, Some(v)) => (b, v),
                (None, None) => return Err(bad()),
            };
            if !RESOURCES.contains(&resource) {
                return Err(bad());
            }
            if verb == Verb::Read && MANAGE_ONLY.contains(&resource) {
                return Err(Error::invalid_field(FIELD, format!("{resource} only has the manage permission")));
            }
            scopes.granted.insert((resource.to_string(), verb));
        }
        // A stored set drops `x:read` when `x:manage` is present.
        let manage: Vec<String> =
            scopes.granted.iter().filter(|(_, v)| *v == Verb::Manage).map(|(r, _)| r.clone()).collect();
        for r in manage {
            scopes.granted.remove(&(r, Verb::Read));
        }
        Ok(scopes)
    }

    pub fn allows(&self, resource: &str, verb: Verb) -> bool {
        self.all
            || self.granted.contains(&(resource.to_string(), Verb::Manage))
            || (verb == Verb::Read && self.granted.contains(&(resource.to_string(), Verb::Read)))
    }

    pub fn is_all(&self) -> bool {
        self.all
    }

    /// Whether every permission in `other` is also granted here (no privilege escalation).
    pub fn covers(&self, other: &Scopes) -> bool {
        self.all || (!other.all && other.granted.iter().all(|(r, v)| self.allows(r, *v)))
    }

    /// The canonical strings, as stored and returned.
    pub fn to_strings(&self) -> Vec<String> {
        if self.all {
            return vec!["*".to_string()];
        }
        self.granted.iter().map(|(r, v)| permission(r, *v)).collect()
    }
}

fn verb_of(s: &str) -> Option<Verb> {
    match s {
        "read" => Some(Verb::Read),
        "manage" => Some(Verb::Manage),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manage_implies_read_and_seed_spelling() {
        let s = Scopes::parse(&["agents:manage", "read:memory", "agents:read"]).unwrap_or_default();
        assert_eq!(s.to_strings(), vec!["agents:manage", "memory:read"]);
        assert!(s.allows("agents", Verb::Read));
        assert!(s.allows("memory", Verb::Read));
        assert!(!s.allows("memory", Verb::Manage));
        assert!(!s.allows("secrets", Verb::Manage));
    }

    #[test]
    fn rejects_unknown_and_read_only_where_manage_only() {
        assert!(Scopes::parse(&["agent:manage"]).is_err());
        assert!(Scopes::parse(&["secrets:read"]).is_err());
        assert!(Scopes::parse(&["agents"]).is_err());
    }

    #[test]
    fn covers_prevents_escalation() {
        let caller = Scopes::parse(&["api_keys:manage", "agents:read"]).unwrap_or_default();
        assert!(caller.covers(&Scopes::parse(&["agents:read"]).unwrap_or_default()));
        assert!(!caller.covers(&Scopes::parse(&["agents:manage"]).unwrap_or_default()));
        assert!(!caller.covers(&Scopes::all()));
        assert!(Scopes::all().covers(&Scopes::all()));
    }
}
