//! Cadenza's test kit.
//!
//! Real parts only: stores on a real SQLite file or a fresh PostgreSQL database, the real router
//! on a loopback port, a manual clock. Fakes of the outside world (model servers, MCP servers,
//! webhook sinks) live here too, as real servers on loopback.

pub mod app;
pub mod db;
pub mod documented;
pub mod fake_mcp;
pub mod fake_model;
pub mod logs;
pub mod webhook_sink;

pub use app::{ADMIN_TOKEN, Resp, TestApp};
pub use db::{TestBackend, TestDb, binary_env};
pub use fake_mcp::{FakeMcp, FakeTool, StaticServer};
pub use webhook_sink::{Received, WebhookSink};
