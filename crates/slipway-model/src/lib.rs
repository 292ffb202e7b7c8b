//! The vocabulary shared by every crate: ids, digests, statuses. No I/O.
