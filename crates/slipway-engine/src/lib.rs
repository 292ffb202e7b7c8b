//! slipway-engine
