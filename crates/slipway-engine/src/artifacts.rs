//! Artifacts: choosing files by the buildspec's globs and packing them into the blob store.
