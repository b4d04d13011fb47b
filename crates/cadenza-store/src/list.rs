//! Dynamic SQL with portable `$n` placeholders, and the one list implementation every area uses:
//! keyset pagination on the time-ordered id, prefix filter, label filter.

use crate::Reads;
use cadenza_domain::page::{ListParams, Page};
use cadenza_domain::{Labels, labels};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, FromRow};

use crate::{StoreResult, on_db};

/// A bound value. Only what the schema uses: text, integers, bytes (sealed values).
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
    Bytes(Vec<u8>),
    /// NULL when `None`.
    OptText(Option<String>),
    OptInt(Option<i64>),
}

/// SQL text plus its binds, numbered `$1…` as they are added.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    text: String,
    binds: Vec<Bind>,
}

impl ListQuery {
    pub(crate) fn new(text: &str) -> Self {
        Self { text: text.to_string(), binds: Vec::new() }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub(crate) fn bind(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        self.text.push_str(&format!("${}", self.binds.len()));
        self
    }

    /// One parenthesized row of a multi-row `VALUES` list, each value bound; `first` is the
    /// list's first row (the others are preceded by a comma).
    pub(crate) fn values_row(&mut self, first: bool, row: impl IntoIterator<Item = Bind>) -> &mut Self {
        self.push(if first { "(" } else { ", (" });
        for (j, b) in row.into_iter().enumerate() {
            self.push(if j == 0 { "" } else { ", " }).bind(b);
        }
        self.push(")")
    }

    /// `AND <column> = <value>`
    pub(crate) fn and_eq(&mut self, column: &str, value: Bind) -> &mut Self {
        self.push(" AND ").push(column).push(" = ").bind(value)
    }

    /// A read of it finds nothing on `backend`: PostgreSQL's text holds no NUL (U+0000; a write
    /// of one is refused, `TEXT_UNSTORABLE`), so nothing stored there equals or starts with a
    /// text holding one, and PostgreSQL would refuse the query rather than run it. Such a read
    /// (a filter, a prefix, a reference, a cursor position) answers as finding nothing, as it
    /// does on SQLite, instead of a 400 that only one backend gives. (A cursor position holding
    /// one reads as past the end there.)
    fn finds_nothing_on(&self, backend: crate::Backend) -> bool {
        backend == crate::Backend::Postgres && self.binds.iter().any(|b| matches!(b, Bind::Text(s) if s.contains('\0')))
    }
}

/// Implemented by row types that can be listed: their id orders them, their labels filter them.
pub(crate) trait Listed {
    fn id(&self) -> &str;
    fn labels_json(&self) -> &str;
}

/// Rows decodable from both backends.
pub(crate) trait AnyRow: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}
impl<T> AnyRow for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

/// `$query` with every bind of the `ListQuery` `$q`, in order.
macro_rules! bound {
    ($query:expr, $q:expr) => {{
        let mut query = $query;
        for b in &$q.binds {
            query = match b {
                Bind::Text(s) => query.bind(s.clone()),
                Bind::Int(i) => query.bind(*i),
                Bind::Bytes(b) => query.bind(b.clone()),
                Bind::OptText(s) => query.bind(s.clone()),
                Bind::OptInt(i) => query.bind(*i),
            };
        }
        query
    }};
}

/// Label filters are checked in Rust; when rows are skipped, fetch in batches this large.
const FILTER_BATCH: usize = 200;

impl Reads {
    pub(crate) async fn fetch_rows<R: AnyRow>(&self, q: &ListQuery) -> StoreResult<Vec<R>> {
        if q.finds_nothing_on(self.backend()) {
            return Ok(Vec::new());
        }
        on_db!(self, read, |db| {
            let query = bound!(sqlx::query_as::<_, R>(AssertSqlSafe(q.text.clone())), q);
            Ok(query.fetch_all(db).await?)
        })
    }

    /// The first row of `q`, fetched with a limit of one: on SQLite the connection's worker
    /// thread hands back one message instead of the row plus an end-of-rows message, one
    /// cross-thread wake-up less per point read.
    pub(crate) async fn fetch_row<R: AnyRow>(&self, q: &ListQuery) -> StoreResult<Option<R>> {
        if q.finds_nothing_on(self.backend()) {
            return Ok(None);
        }
        on_db!(self, read, |db| {
            let query = bound!(sqlx::query_as::<_, R>(AssertSqlSafe(q.text.clone())), q);
            Ok(query.fetch_optional(db).await?)
        })
    }

    /// A single integer (a `COUNT(*)`).
    pub(crate) async fn fetch_scalar_i64(&self, q: &ListQuery) -> StoreResult<i64> {
        if q.finds_nothing_on(self.backend()) {
            return Ok(0);
        }
        on_db!(self, read, |db| {
            let query = bound!(sqlx::query_scalar::<_, i64>(AssertSqlSafe(q.text.clone())), q);
            Ok(query.fetch_one(db).await?)
        })
    }

    /// One page of `base` (a `SELECT … FROM t WHERE <scope>` query) under `params`.
    /// `name_column` is what `prefix` filters on.
    pub(crate) async fn list_page<R: AnyRow + Listed>(
        &self,
        base: ListQuery,
        name_column: &str,
        params: &ListParams,
    ) -> StoreResult<Page<R>> {
        let want = params.limit as usize + 1;
        let batch = if params.labels.is_empty() { want } else { want.max(FILTER_BATCH) };
        let mut after = params.after.clone();
        let mut out: Vec<R> = Vec::with_capacity(want);
        loop {
            let mut q = base.clone();
            if let Some(a) = &after {
                q.push(if params.descending { " AND id < " } else { " AND id > " }).bind(Bind::Text(a.clone()));
            }
            if let Some(p) = &params.prefix {
                q.push(&format!(" AND substr({name_column}, 1, length("))
                    .bind(Bind::Text(p.clone()))
                    .push(")) = ")
                    .bind(Bind::Text(p.clone()));
            }
            q.push(if params.descending { " ORDER BY id DESC LIMIT " } else { " ORDER BY id ASC LIMIT " })
                .bind(Bind::Int(batch as i64));
            let rows: Vec<R> = self.fetch_rows(&q).await?;
            let fetched = rows.len();
            after = rows.last().map(|r| r.id().to_string());
            out.extend(rows.into_iter().filter(|r| {
                params.labels.is_empty()
                    || serde_json::from_str::<Labels>(r.labels_json())
                        .is_ok_and(|l| labels::matches(&l, &params.labels))
            }));
            if out.len() >= want || fetched < batch {
                break;
            }
        }
        out.truncate(want);
        Ok(Page::from_overfetch(out, params.limit, |r| r.id()))
    }
}

impl crate::Tx {
    /// Deletes one row of a workspace-scoped `table` by id; whether it existed.
    pub(crate) async fn delete_in_workspace(
        &mut self,
        table: &'static str,
        workspace_id: &str,
        id: &str,
    ) -> StoreResult<bool> {
        let sql = format!("DELETE FROM {table} WHERE workspace_id = $1 AND id = $2");
        let n = crate::tx::on_tx!(self, |tx| {
            sqlx::query(AssertSqlSafe(sql.clone())).bind(workspace_id).bind(id).execute(&mut *tx).await?.rows_affected()
        });
        Ok(n > 0)
    }
}

impl crate::Tx {
    /// The first row of `q`, read inside this unit of work.
    pub(crate) async fn fetch_row<R: AnyRow>(&mut self, q: &ListQuery) -> StoreResult<Option<R>> {
        if q.finds_nothing_on(self.backend()) {
            return Ok(None);
        }
        crate::tx::on_tx!(self, |c| {
            let query = bound!(sqlx::query_as::<_, R>(AssertSqlSafe(q.text.clone())), q);
            Ok(query.fetch_optional(&mut *c).await?)
        })
    }

    /// Runs a write built as a `ListQuery` inside this unit of work; the rows it touched.
    pub(crate) async fn execute(&mut self, q: &ListQuery) -> StoreResult<u64> {
        crate::tx::on_tx!(self, |c| {
            let query = bound!(sqlx::query(AssertSqlSafe(q.text.clone())), q);
            Ok(query.execute(&mut *c).await?.rows_affected())
        })
    }

    /// A single integer (a `COUNT(*)`), read inside this unit of work.
    pub(crate) async fn fetch_scalar_i64(&mut self, q: &ListQuery) -> StoreResult<i64> {
        if q.finds_nothing_on(self.backend()) {
            return Ok(0);
        }
        crate::tx::on_tx!(self, |c| {
            let query = bound!(sqlx::query_scalar::<_, i64>(AssertSqlSafe(q.text.clone())), q);
            Ok(query.fetch_one(&mut *c).await?)
        })
    }
}
