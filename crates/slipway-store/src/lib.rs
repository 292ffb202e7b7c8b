//! slipway-store
