//! slipway-proto
