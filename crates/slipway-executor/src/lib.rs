//! slipway-executor
