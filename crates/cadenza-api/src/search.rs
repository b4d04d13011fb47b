//! Tool search (CONTRACT §15): BM25 over tools, tool sets and agents, as a service the route
//! and (later) the runtime's progressive discovery share.
//!
//! Each workspace has its own in-memory tantivy index, so a query can never see another
//! tenant's documents. An index is a derived copy of the database: it is built on first use
//! and rebuilt when the workspace's catalog version (bumped in the same transaction as every
//! write to agents, tool sets and tools, by any replica) has moved. A tool catalog is small,
//! so rebuilding a workspace whole is simpler and safer than patching documents.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cadenza_domain::Error;
use cadenza_domain::agents::Agent;
use cadenza_domain::tool_sets::{Tool, ToolSet};
use cadenza_store::Store;
use serde_json::Value;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, STORED, STRING, Schema, TEXT, Value as _};
use tantivy::tokenizer::TokenStream;
use tantivy::{Index, IndexReader, TantivyDocument, Term, doc};

/// What a hit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitKind {
    Tool,
    ToolSet,
    Agent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub kind: HitKind,
    pub id: String,
    pub score: f32,
}

struct Fields {
    kind: Field,
    id: Field,
    name: Field,
    name_exact: Field,
    llm_name: Field,
    description: Field,
    params: Field,
}

struct WorkspaceIndex {
    version: i64,
    index: Index,
    reader: IndexReader,
}

/// The per-workspace indexes of this process.
#[derive(Clone)]
pub struct SearchIndex {
    schema: Schema,
    indexes: Arc<Mutex<HashMap<String, Arc<WorkspaceIndex>>>>,
}

impl Default for SearchIndex {
    fn default() -> Self {
        let mut b = Schema::builder();
        b.add_text_field("kind", STRING | STORED);
        b.add_text_field("id", STRING | STORED);
        b.add_text_field("name", TEXT);
        b.add_text_field("name_exact", STRING);
        b.add_text_field("llm_name", TEXT);
        b.add_text_field("description", TEXT);
        b.add_text_field("params", TEXT);
        Self { schema: b.build(), indexes: Arc::default() }
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    tracing::error!(error = %e, "search index failure");
    Error::internal()
}

/// Every property name a JSON Schema declares, at any depth.
fn param_names(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            for v in map.values() {
                param_names(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| param_names(v, out)),
        _ => {}
    }
}

impl SearchIndex {
    fn fields(&self) -> Fields {
        let f = |n: &str| self.schema.get_field(n).unwrap_or_else(|_| unreachable!("field {n} is in the schema"));
        Fields {
            kind: f("kind"),
            id: f("id"),
            name: f("name"),
            name_exact: f("name_exact"),
            llm_name: f("llm_name"),
            description: f("description"),
            params: f("params"),
        }
    }

    /// The workspace's index, rebuilt from the store when its catalog version moved.
    async fn index_for(&self, store: &Store, workspace_id: &str) -> Result<Arc<WorkspaceIndex>, Error> {
        let version = store.catalog_version(workspace_id).await?;
        if let Some(ix) = self.indexes.lock().map_err(internal)?.get(workspace_id)
            && ix.version == version
        {
            return Ok(ix.clone());
        }
        let agents = store.search_agents(workspace_id).await?;
        let (sets, tools) = store.search_catalog(workspace_id).await?;
        let built = Arc::new(self.build(version, &agents, &sets, &tools).map_err(internal)?);
        let mut all = self.indexes.lock().map_err(internal)?;
        // Another request may have built a newer one meanwhile; keep the newest.
        match all.get(workspace_id) {
            Some(current) if current.version > version => Ok(current.clone()),
            _ => {
                all.insert(workspace_id.to_string(), built.clone());
                Ok(built)
            }
        }
    }

    fn build(
        &self,
        version: i64,
        agents: &[Agent],
        sets: &[ToolSet],
        tools: &[Tool],
    ) -> tantivy::Result<WorkspaceIndex> {
        let f = self.fields();
        let index = Index::create_in_ram(self.schema.clone());
        let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, 15_000_000)?;
        for t in tools {
            let mut params = Vec::new();
            param_names(&t.parameters, &mut params);
            writer.add_document(doc!(
                f.kind => "tool", f.id => t.meta.id.clone(), f.name => t.meta.name.clone(),
                f.name_exact => t.meta.name.to_lowercase(), f.llm_name => t.llm_tool_name.clone(),
                f.description => t.description.clone(), f.params => params.join(" "),
            ))?;
            if t.llm_tool_name.to_lowercase() != t.meta.name.to_lowercase() {
                writer.add_document(doc!(f.kind => "alias", f.id => t.meta.id.clone(),
                    f.name_exact => t.llm_tool_name.to_lowercase()))?;
            }
        }
        for s in sets {
            writer.add_document(doc!(
                f.kind => "toolSet", f.id => s.meta.id.clone(), f.name => s.meta.name.clone(),
                f.name_exact => s.meta.name.to_lowercase(), f.description => s.description.clone(),
            ))?;
        }
        for a in agents {
            writer.add_document(doc!(
                f.kind => "agent", f.id => a.meta.id.clone(), f.name => a.meta.name.clone(),
                f.name_exact => a.meta.name.to_lowercase(), f.description => a.description.clone(),
            ))?;
        }
        writer.commit()?;
        let reader = index.reader()?;
        Ok(WorkspaceIndex { version, index, reader })
    }

    /// The best `limit` matches for `query` in the workspace, best first. The query is plain
    /// words (no query syntax to get wrong): any word may match a name, model-facing name,
    /// description or parameter name; a whole-name match ranks first.
    pub async fn search(
        &self,
        store: &Store,
        workspace_id: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Hit>, Error> {
        let ix = self.index_for(store, workspace_id).await?;
        let f = self.fields();
        let mut words = Vec::new();
        let mut analyzer = ix.index.tokenizer_for_field(f.name).map_err(internal)?;
        let mut stream = analyzer.token_stream(query);
        while stream.advance() {
            words.push(stream.token().text.clone());
        }
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let exact = Term::from_field_text(f.name_exact, query.trim().to_lowercase().as_str());
        should.push((
            Occur::Should,
            Box::new(BoostQuery::new(Box::new(TermQuery::new(exact, IndexRecordOption::Basic)), 20.0)),
        ));
        for w in &words {
            for (field, boost) in [(f.name, 3.0), (f.llm_name, 3.0), (f.params, 1.5), (f.description, 1.0)] {
                let term = TermQuery::new(Term::from_field_text(field, w), IndexRecordOption::WithFreqs);
                should.push((Occur::Should, Box::new(BoostQuery::new(Box::new(term), boost))));
            }
        }
        let searcher = ix.reader.searcher();
        let top = searcher
            .search(&BooleanQuery::new(should), &TopDocs::with_limit(limit.saturating_mul(2).max(1)).order_by_score())
            .map_err(internal)?;
        let mut hits: Vec<Hit> = Vec::new();
        for (score, addr) in top {
            let d: TantivyDocument = searcher.doc(addr).map_err(internal)?;
            let text = |field| d.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let kind = match text(f.kind).as_str() {
                "tool" | "alias" => HitKind::Tool,
                "toolSet" => HitKind::ToolSet,
                _ => HitKind::Agent,
            };
            let id = text(f.id);
            // An alias document (the llmToolName) and its tool are one hit: keep the better.
            match hits.iter_mut().find(|h| h.id == id) {
                Some(h) => h.score = h.score.max(score),
                None => hits.push(Hit { kind, id, score }),
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(limit);
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameter_names_at_any_depth() {
        let mut out = Vec::new();
        param_names(
            &json!({"type": "object", "properties": {"city": {"type": "string"}, "when": {"type": "object", "properties": {"day": {}}}},
                    "items": [{"properties": {"unit": {}}}]}),
            &mut out,
        );
        out.sort();
        assert_eq!(out, ["city", "day", "unit", "when"]);
    }
}
