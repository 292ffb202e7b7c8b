//! slipway-store: durable state: the SQL state database (SQLite or PostgreSQL, `db`) and the
//! content-addressed blob store on local disk.
//!
//! Blobs (logs, artifacts, caches, image layers) live at `<root>/blobs/sha256/<2 hex>/<64 hex>`.
//! A blob is written to a temporary file under `<root>/tmp/`, hashed as it streams, and renamed
//! into place only when complete, so a reader never sees a partial blob and identical content
//! is stored once. `tmp/` sits on the same file system as `blobs/`, which keeps the rename atomic.

mod blob;
pub mod db;

pub use blob::{BlobStore, BlobWriter, StoreError, SyncBlobWriter};
pub use db::{Db, DbError, DbKind, ExecutionRow, NewExecution, ProjectRow, Retention};
