//! `$ref` handling. Only refs inside the document (`#/...`) are followed; anything else — `http:`,
//! `https:`, `file:`, a relative file — refuses the whole document (`RemoteRefRefused`). Nothing
//! in this crate ever fetches a ref: there is no code that could.
//!
//! Schema refs are inlined so models see plain schemas, except where inlining cannot finish or
//! would explode: a ref already being inlined (recursion), refs nested deeper than
//! [`MAX_INLINE_DEPTH`] refs or [`MAX_INLINE_NESTING`] levels, or once a tool has inlined
//! [`INLINE_BUDGET`] schema nodes. Those stay
//! refs to `#/$defs/<Name>`, and the tool's input schema carries the `$defs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

use super::schema_walk::for_each_child_mut;
use crate::error::{SpecError, SpecErrorKind};

pub const MAX_INLINE_DEPTH: usize = 16;
/// Past this JSON nesting depth of the output, refs are no longer inlined: deep values make deep
/// recursion in everything that later walks, prints or drops them.
pub const MAX_INLINE_NESTING: usize = 192;
pub const INLINE_BUDGET: usize = 20_000;
const MAX_REF_HOPS: usize = 32;

/// Keys whose values are data, not document structure; a `$ref` inside an example is not a ref.
fn is_data_key(key: &str) -> bool {
    matches!(key, "example" | "examples" | "default" | "const" | "enum") || key.starts_with("x-")
}

/// Refuses a document with any `$ref` that is not `#`-local, naming it and where it sits.
pub fn refuse_remote_refs(doc: &Value) -> Result<(), SpecError> {
    fn walk(v: &Value, at: &mut Vec<String>) -> Result<(), SpecError> {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref")
                    && !r.starts_with('#')
                {
                    return Err(remote(r, &format!("/{}", at.join("/"))));
                }
                for (k, child) in m {
                    if !is_data_key(k) {
                        at.push(k.replace('~', "~0").replace('/', "~1"));
                        walk(child, at)?;
                        at.pop();
                    }
                }
                Ok(())
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    at.push(i.to_string());
                    walk(child, at)?;
                    at.pop();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    walk(doc, &mut Vec::new())
}

fn remote(r: &str, at: &str) -> SpecError {
    SpecError::new(
        SpecErrorKind::RemoteRefRefused,
        format!("$ref {r:?} at {at} points outside the document; external references are never fetched"),
    )
}

/// The value a local ref (`#/a/b~1c`) points at.
pub fn resolve_pointer<'d>(doc: &'d Value, r: &str) -> Result<&'d Value, SpecError> {
    let Some(fragment) = r.strip_prefix('#') else { return Err(remote(r, "(resolving)")) };
    let fragment = percent_decode(fragment);
    if !fragment.is_empty() && !fragment.starts_with('/') {
        return Err(SpecError::invalid(format!("$ref {r:?}: anchors are not supported, use a JSON pointer")));
    }
    let mut here = doc;
    for token in fragment.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        let next = match here {
            Value::Object(m) => m.get(&token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        here = next.ok_or_else(|| SpecError::invalid(format!("$ref {r:?} points at nothing in the document")))?;
    }
    Ok(here)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

/// Follows a chain of refs (a parameter that is a ref to a ref…) to the object itself.
pub fn deref<'d>(doc: &'d Value, mut v: &'d Value) -> Result<&'d Value, SpecError> {
    for _ in 0..MAX_REF_HOPS {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => v = resolve_pointer(doc, r)?,
            None => return Ok(v),
        }
    }
    Err(SpecError::invalid(format!("more than {MAX_REF_HOPS} chained $refs (a ref loop?)")))
}

/// Keywords that only annotate; a `$ref` with only these beside it can be merged into its target.
const ANNOTATIONS: &[&str] =
    &["description", "title", "deprecated", "examples", "default", "readOnly", "writeOnly", "$comment"];

/// Keywords with no JSON Schema meaning, dropped from tool schemas (some model APIs refuse
/// unknown keywords).
fn is_openapi_only(key: &str) -> bool {
    matches!(key, "discriminator" | "xml" | "externalDocs" | "example") || key.starts_with("x-")
}

/// Turns document schemas into self-contained tool schemas; one per tool.
pub struct SchemaResolver<'d> {
    doc: &'d Value,
    stack: Vec<String>,
    nesting: usize,
    budget: usize,
    sizes: HashMap<String, usize>,
    def_names: BTreeMap<String, String>,
    used_names: BTreeSet<String>,
    pending: Vec<String>,
}

impl<'d> SchemaResolver<'d> {
    pub fn new(doc: &'d Value) -> Self {
        Self {
            doc,
            stack: Vec::new(),
            nesting: 0,
            budget: INLINE_BUDGET,
            sizes: HashMap::new(),
            def_names: BTreeMap::new(),
            used_names: BTreeSet::new(),
            pending: Vec::new(),
        }
    }

    /// `schema` with its refs inlined or pointed into `#/$defs`.
    pub fn resolve(&mut self, schema: &Value) -> Result<Value, SpecError> {
        self.nesting += 1;
        let resolved = self.resolve_nested(schema);
        self.nesting -= 1;
        resolved
    }

    fn resolve_nested(&mut self, schema: &Value) -> Result<Value, SpecError> {
        let Value::Object(m) = schema else { return Ok(schema.clone()) };
        let Some(r) = m.get("$ref") else { return self.resolve_object(m) };
        let Value::String(r) = r else { return Err(SpecError::invalid("$ref must be a string")) };
        if !r.starts_with('#') {
            return Err(remote(r, "(resolving)"));
        }
        let target = self.resolve_ref(r)?;
        let mut siblings = m.clone();
        siblings.remove("$ref");
        let Value::Object(siblings) = self.resolve(&Value::Object(siblings))? else {
            return Err(SpecError::invalid("unreachable: object resolved to a non-object"));
        };
        if siblings.is_empty() {
            return Ok(target);
        }
        match target {
            Value::Object(mut t)
                if !t.contains_key("$ref") && siblings.keys().all(|k| ANNOTATIONS.contains(&k.as_str())) =>
            {
                t.extend(siblings);
                Ok(Value::Object(t))
            }
            target => {
                let mut out = siblings;
                let all_of = match out.remove("allOf") {
                    Some(Value::Array(mut list)) => {
                        list.insert(0, target);
                        list
                    }
                    _ => vec![target],
                };
                out.insert("allOf".into(), Value::Array(all_of));
                Ok(Value::Object(out))
            }
        }
    }

    fn resolve_object(&mut self, m: &Map<String, Value>) -> Result<Value, SpecError> {
        let mut out: Map<String, Value> =
            m.iter().filter(|(k, _)| !is_openapi_only(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(example) = m.get("example")
            && !out.contains_key("examples")
        {
            out.insert("examples".into(), Value::Array(vec![example.clone()]));
        }
        let mut failure = None;
        for_each_child_mut(&mut out, &mut |child| {
            if failure.is_none() {
                match self.resolve(child) {
                    Ok(v) => *child = v,
                    Err(e) => failure = Some(e),
                }
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(Value::Object(out)),
        }
    }

    fn resolve_ref(&mut self, r: &str) -> Result<Value, SpecError> {
        let target = resolve_pointer(self.doc, r)?;
        let size = *self.sizes.entry(r.to_owned()).or_insert_with(|| node_count(target));
        let inline = !self.stack.iter().any(|s| s == r)
            && self.stack.len() < MAX_INLINE_DEPTH
            && self.nesting < MAX_INLINE_NESTING
            && size <= self.budget;
        if !inline {
            return Ok(Value::Object(Map::from_iter([(
                "$ref".to_owned(),
                Value::String(format!("#/$defs/{}", self.def_name(r))),
            )])));
        }
        self.budget -= size;
        self.stack.push(r.to_owned());
        let resolved = self.resolve(target);
        self.stack.pop();
        resolved
    }

    fn def_name(&mut self, r: &str) -> String {
        if let Some(name) = self.def_names.get(r) {
            return name.clone();
        }
        let last = r.rsplit('/').next().unwrap_or("").replace("~1", "/").replace("~0", "~");
        let last = percent_decode(&last);
        let mut base: String = last
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' })
            .collect();
        if base.is_empty() {
            base = "def".into();
        }
        let mut name = base.clone();
        let mut n = 2;
        while self.used_names.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.used_names.insert(name.clone());
        self.def_names.insert(r.to_owned(), name.clone());
        self.pending.push(r.to_owned());
        name
    }

    /// The `$defs` the resolved schemas point into (empty when everything was inlined).
    pub fn finish(mut self) -> Result<Map<String, Value>, SpecError> {
        let mut defs = Map::new();
        while let Some(r) = self.pending.pop() {
            let target = resolve_pointer(self.doc, &r)?;
            self.stack = vec![r.clone()];
            self.nesting = 0;
            let body = self.resolve(target)?;
            let name = self.def_names.get(&r).cloned().unwrap_or_default();
            defs.insert(name, body);
        }
        Ok(defs)
    }
}

fn node_count(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(node_count).sum::<usize>(),
        Value::Array(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_unescape_and_percent_decode() {
        let doc = json!({"a": {"b/c": {"d~e": [10, {"f g": 1}]}}});
        assert_eq!(resolve_pointer(&doc, "#/a/b~1c/d~0e/0").ok(), Some(&json!(10)));
        assert_eq!(resolve_pointer(&doc, "#/a/b~1c/d~0e/1/f%20g").ok(), Some(&json!(1)));
        assert_eq!(resolve_pointer(&doc, "#/a/missing").map_err(|e| e.kind), Err(SpecErrorKind::InvalidSpec));
        assert_eq!(resolve_pointer(&doc, "other.json#/a").map_err(|e| e.kind), Err(SpecErrorKind::RemoteRefRefused));
    }

    #[test]
    fn ref_loops_in_deref_end() {
        let doc = json!({"p": {"a": {"$ref": "#/p/b"}, "b": {"$ref": "#/p/a"}}});
        assert!(deref(&doc, &doc["p"]["a"]).is_err());
    }

    #[test]
    fn recursion_becomes_defs() {
        let doc = json!({"components": {"schemas": {"Node": {"type": "object", "properties": {
            "value": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}}}});
        let mut r = SchemaResolver::new(&doc);
        let s = r.resolve(&json!({"$ref": "#/components/schemas/Node"})).unwrap_or_default();
        let defs = r.finish().unwrap_or_default();
        assert_eq!(s["properties"]["children"]["items"], json!({"$ref": "#/$defs/Node"}));
        assert_eq!(defs["Node"]["properties"]["children"]["items"], json!({"$ref": "#/$defs/Node"}));
    }

    #[test]
    fn deep_chains_stop_inlining() {
        // S0 → S1 → … each wrapped 100 levels deep: inlining all would nest 4 000 levels.
        let mut schemas = Map::new();
        for i in 0..40 {
            let mut s = json!({"$ref": format!("#/components/schemas/S{}", i + 1)});
            for _ in 0..100 {
                s = json!({"type": "array", "items": s});
            }
            schemas.insert(format!("S{i}"), s);
        }
        schemas.insert("S40".into(), json!({"type": "string"}));
        let doc = json!({"components": {"schemas": schemas}});
        let mut r = SchemaResolver::new(&doc);
        let s = r.resolve(&json!({"$ref": "#/components/schemas/S0"})).unwrap_or_default();
        let defs = r.finish().unwrap_or_default();
        fn depth(v: &Value) -> usize {
            match v {
                Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
                Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
                _ => 0,
            }
        }
        assert!(depth(&s) < 2 * MAX_INLINE_NESTING + 10, "depth {}", depth(&s));
        assert!(defs.values().all(|d| depth(d) < 2 * MAX_INLINE_NESTING + 10));
    }

    #[test]
    fn exponential_fan_out_stays_bounded() {
        let mut schemas = Map::new();
        for i in 0..40 {
            let next = format!("#/components/schemas/S{}", i + 1);
            schemas.insert(
                format!("S{i}"),
                json!({"type": "object", "properties": {"a": {"$ref": next}, "b": {"$ref": next}}}),
            );
        }
        schemas.insert("S40".into(), json!({"type": "string"}));
        let doc = json!({"components": {"schemas": schemas}});
        let mut r = SchemaResolver::new(&doc);
        let s = r.resolve(&json!({"$ref": "#/components/schemas/S0"})).unwrap_or_default();
        let defs = r.finish().unwrap_or_default();
        assert!(node_count(&s) + node_count(&Value::Object(defs)) < 10 * INLINE_BUDGET);
    }
}
